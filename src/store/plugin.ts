import fp from 'fastify-plugin'
import type { Clock } from '../clock.ts'
import { openDatabase } from './database.ts'
import { EventStore } from './event-store.ts'
import type { Projection } from './projection.ts'

declare module 'fastify' {
  interface FastifyInstance {
    store: EventStore
    clock: Clock
  }
}

export interface StorePluginOptions {
  databasePath: string
  projections: readonly Projection[]
  clock: Clock
  maxGroup: number
}

/** Opens the log and its projections; on close, commits what is queued and closes the file. */
export default fp<StorePluginOptions>(async function storePlugin (app, options) {
  const store = new EventStore(openDatabase(options.databasePath), options.projections, options.clock, options.maxGroup)
  app.decorate('store', store)
  app.decorate('clock', options.clock)
  app.addHook('onClose', async () => { store.close() })
}, { name: 'store' })
