// A verify thread's entry: verify.ts is TypeScript, run through tsx (a worker does not inherit the loader).
import { register } from 'tsx/esm/api'

register()
await import('./verify.ts')
