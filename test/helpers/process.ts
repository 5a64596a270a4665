import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Teardown } from './service.ts'

export const root = fileURLToPath(new URL('../..', import.meta.url))

/** The environment without tap's own settings, which are for test processes, not the service. */
export function cleanEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(_?TAP|NODE_OPTIONS$)/.test(key)))
  return { ...env, ...extra }
}

export interface ServerProcess {
  child: ChildProcess
  url: string
  mqttUrl: string
  exited: Promise<number | null>
  /** Every line the service wrote to stdout (its log) so far. */
  lines: string[]
}

/** The real `src/server.ts` as its own process, on ephemeral ports; resolves once both listen. */
export function spawnServer (t: Teardown, env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: cleanEnv({ PORT: '0', MQTT_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return new Promise((resolve, reject) => {
    let url: string | undefined
    let stderr = ''
    const lines: string[] = []
    child.stderr!.on('data', chunk => { stderr += chunk })
    void exited.then(code => reject(new Error(`server exited (${code}) before listening: ${stderr}`)))
    createInterface({ input: child.stdout! }).on('line', line => {
      if (process.env.DEBUG_SERVER) process.stderr.write(line + '\n')
      lines.push(line)
      let entry: { msg?: string, mqtt?: string }
      try { entry = JSON.parse(line) } catch { return }
      const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(entry.msg ?? '')
      if (listening !== null) url = listening[1]
      if (entry.mqtt !== undefined && url !== undefined) resolve({ child, url, mqttUrl: entry.mqtt, exited, lines })
    })
  })
}

export interface CliResult { code: number, stdout: string, stderr: string }

/** `devicelog <args>` exactly as a user runs it (bin/devicelog.js). */
export function devicelog (args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise(resolve => {
    execFile(process.execPath, ['bin/devicelog.js', ...args], { cwd: root, env: cleanEnv(env) }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (typeof error.code === 'number' ? error.code : 1), stdout, stderr })
    })
  })
}
