import { startPostgres } from '../../src/cli/engines.ts'

export { findPostgres } from '../../src/cli/engines.ts'

/** The part of a tap test the helper needs: teardown. */
export interface Teardown { teardown(fn: () => unknown): void }

/**
 * A throwaway PostgreSQL cluster for one tap test (a temporary folder, a unix socket, no TCP):
 * stopped, and its folder removed, at the test's teardown. Resolves to its url.
 */
export async function withPostgres (t: Teardown): Promise<string> {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  return server.url
}
