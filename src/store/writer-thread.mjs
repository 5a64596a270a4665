// The writer thread's entry: the store is TypeScript, run through tsx like the service itself
// (a worker does not inherit the main thread's loader).
import { register } from 'tsx/esm/api'

register()
await import('./writer.ts')
