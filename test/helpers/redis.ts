import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Teardown } from './postgres.ts'

/** A free TCP port on 127.0.0.1 (asked of the kernel, then handed to Redis). */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

/**
 * A throwaway Redis (Debian's redis-server) on 127.0.0.1 and an ephemeral port, nothing saved to
 * disk; stopped at the test's teardown. Resolves to its url.
 */
export async function withRedis (t: Teardown): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'devicelog-redis-'))
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    server.once('error', error => reject(new Error(`redis-server: ${error.message} (Debian: apt-get install redis-server)`)))
    server.once('exit', code => reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`)))
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve()
    })
  })
  server.removeAllListeners('exit')
  // A test process that ends without its teardown (killed by a timeout) leaves no Redis behind.
  const kill = () => { if (server.exitCode === null) server.kill('SIGKILL') }
  process.once('exit', kill)
  t.teardown(async () => {
    process.off('exit', kill)
    if (server.exitCode === null) {
      const exited = new Promise(resolve => server.once('exit', resolve))
      server.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })
  return `redis://127.0.0.1:${port}`
}
