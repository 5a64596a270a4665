import { execFile } from 'node:child_process'
import { serviceEnv, startNode, type NodeProcess } from '../../src/cli/engines.ts'
import { fileURLToPath } from 'node:url'
import type { Teardown } from './service.ts'

export const root = fileURLToPath(new URL('../..', import.meta.url))

export { serviceEnv as cleanEnv } from '../../src/cli/engines.ts'

export interface ServerProcess extends NodeProcess {
  /** Every line the service wrote to stdout (its log) so far. */
  lines: string[]
}

/** The real `src/server.ts` as its own process, on ephemeral ports; resolves once both listen. */
export async function spawnServer (t: Teardown, env: Record<string, string>): Promise<ServerProcess> {
  const lines: string[] = []
  const node = await startNode(env, line => {
    if (process.env.DEBUG_SERVER) process.stderr.write(line + '\n')
    lines.push(line)
  })
  t.teardown(() => { if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL') })
  return { ...node, lines }
}

export interface CliResult { code: number, stdout: string, stderr: string }

/** `devicelog <args>` exactly as a user runs it (bin/devicelog.js). */
export function devicelog (args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise(resolve => {
    execFile(process.execPath, ['bin/devicelog.js', ...args], { cwd: root, env: serviceEnv(env) }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (typeof error.code === 'number' ? error.code : 1), stdout, stderr })
    })
  })
}
