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
  // Several nodes behind a balancer: a request sees what any node acknowledged before it came
  // (a token issued by one node, used at once on another), at one round trip to PostgreSQL.
  if (store.shared) app.addHook('onRequest', async () => { await store.caughtUp() })
}, { name: 'store' })
