import fp from 'fastify-plugin'
import type { Clock } from '../clock.ts'
import { EventStore, type EventStoreOptions } from './event-store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    store: EventStore
    clock: Clock
  }
}

export type StorePluginOptions = EventStoreOptions

/** Opens the log (its writer thread and a read connection); on close, commits what is queued and closes both. */
export default fp<StorePluginOptions>(async function storePlugin (app, options) {
  const store = await EventStore.open({ log: app.log, ...options })
  app.decorate('store', store)
  app.decorate('clock', options.clock)
  app.addHook('onClose', async () => { await store.close() })
}, { name: 'store' })
