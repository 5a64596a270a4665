import fp from 'fastify-plugin'
import { Gauge, Registry } from 'prom-client'
import type { BrokerObserver } from '../broker/broker.ts'
import { trackLiveClients } from '../live/clients.ts'
import { brokerObserver, createInstruments, type Instruments } from './instruments.ts'
import metricsRoute from './route.ts'

export interface Metrics {
  readonly registry: Registry
  readonly instruments: Instruments
  /** Handed to the broker plugin (which does not know of metrics): messages and connections as they happen. */
  readonly broker: BrokerObserver
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

export interface MetricsOptions {
  /** METRICS_TOKEN; unset, GET /metrics answers only the loopback address. */
  token: string | undefined
}

/**
 * The service's metrics and GET /metrics. Registered after the store and @fastify/websocket and
 * before every route, so that its hooks see each WebSocket and event stream opened.
 */
export default fp<MetricsOptions>(async function metricsPlugin (app, { token }) {
  const registry = new Registry()
  const instruments = createInstruments(registry)

  app.store.subscribe((_events, group) => {
    if (!group.here) return // another node's group: its commit was timed there
    instruments.commitGroupSize.observe(group.units)
    instruments.commitSeconds.observe(group.seconds)
  })

  // The count is read once; from then on the head moves with each commit the service is told of,
  // so a scrape reads memory. (One statement: the count and the head of one snapshot.)
  const atStart = app.store.db.prepare('SELECT count(*) AS events, coalesce(max(position), 0) AS head FROM events').get() as { events: number, head: number }
  const store = app.store
  // These gauges are set by their collect(), at each scrape, from what is in memory.
  new Gauge({
    name: 'devicelog_log_events',
    help: 'Events in the log',
    registers: [registry],
    collect () { this.set(atStart.events + store.headPosition - atStart.head) }
  })
  new Gauge({
    name: 'devicelog_log_head_position',
    help: 'Position of the last committed event',
    registers: [registry],
    collect () { this.set(store.headPosition) }
  })

  const live = trackLiveClients(app)
  new Gauge({
    name: 'devicelog_live_clients',
    help: 'WebSocket clients and server-sent event streams open now, by transport (websocket, sse) and route',
    labelNames: ['transport', 'route'] as const,
    registers: [registry],
    collect () {
      for (const { transport, route, clients } of live.count()) this.set({ transport, route }, clients)
    }
  })

  app.decorate('metrics', { registry, instruments, broker: brokerObserver(instruments) })
  await app.register(metricsRoute, { registry, token })
}, { name: 'metrics', dependencies: ['store', '@fastify/websocket'] })
