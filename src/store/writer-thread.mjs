// The writer thread's entry where its bundle could not be built (thread-bundle.ts): the store is
// TypeScript, run through tsx like the service itself (a worker does not inherit the main
// thread's loader).
import { workerData } from 'node:worker_threads'
import { register } from 'tsx/esm/api'

register()
const { runWriter } = await import('./writer.ts')
runWriter(await import(workerData.projectionsModule))
