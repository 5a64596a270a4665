import { startRedis } from '../../src/cli/engines.ts'
import type { Teardown } from './postgres.ts'

/** A throwaway Redis on 127.0.0.1 and an ephemeral port, stopped at the test's teardown. Resolves to its url. */
export async function withRedis (t: Teardown): Promise<string> {
  const server = await startRedis()
  t.teardown(() => server.stop())
  return server.url
}
