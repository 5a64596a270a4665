import t, { type Test } from 'tap'

/**
 * A test that waits on events: one that never comes fails that test after `ms`, rather than
 * the whole file at tap's 240 s (package.json; tap honours t.setTimeout, not a later subtest's `timeout` option).
 */
export function testWithin (ms: number) {
  return (name: string, fn: (t: Test) => Promise<void>): void => {
    t.test(name, async t => {
      t.setTimeout(ms)
      await fn(t)
    })
  }
}
