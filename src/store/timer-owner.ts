import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { Timer } from '../clock.ts'
import type { Leases } from './postgres/leases.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Where the service's timers run: on this node, or, with several nodes, on the one that holds their lease. */
    timers: TimerOwner
  }
}

export interface TimerOwner {
  /**
   * A set of timers that must run on one node only (instance stops, zone timers, callback retries,
   * checkpoints): `start` schedules them from the log, firing at once what fell due, and returns
   * what stops them. On one node it starts at once; with several, when this node takes the lease
   * (again after another node held it: what fell due meanwhile fires then), and it stops when
   * this node loses the lease or closes.
   */
  own(name: string, start: () => () => void): void
  /** Whether this node runs the timers now. */
  readonly running: boolean
  /** Settles once this node's last try for the lease (and its renewal) is done: tests move the clock in steps. */
  settled(): Promise<void>
  /** Several nodes: this node's name, which its device connections carry (undefined on one node). */
  readonly node: string | undefined
  /** Several nodes: whether a node still renews its own lease (true on one node). */
  alive(node: string): Promise<boolean>
  /**
   * This node is stopping: it gives up its `serving:` lease, then says whether no other node
   * serves now (true on one node). Of nodes stopping together at least one hears true: each
   * gives its lease up before it looks at the others'.
   */
  lastToLeave(): Promise<boolean>
}

export interface TimerOwnerOptions {
  /** DATABASE_URL: the log other nodes share; unset, this node runs every timer. */
  postgresUrl?: string
  /** How long the lease lasts unless renewed: a dead node's timers wait at most this long for another. */
  leaseSeconds: number
}

const LEASE = 'timers'

/** The service's timers, on the one node that holds their lease (src/store/postgres/leases.ts). */
export default fp<TimerOwnerOptions>(async function timerOwner (app, { postgresUrl, leaseSeconds }) {
  const sets: Array<{ name: string, start: () => () => void, stop?: () => void }> = []
  let running = false
  const startAll = () => {
    running = true
    for (const set of sets) set.stop ??= set.start()
  }
  const stopAll = () => {
    running = false
    for (const set of sets) {
      set.stop?.()
      set.stop = undefined
    }
  }
  let trying: Promise<unknown> = Promise.resolve()
  let leases: Leases | undefined
  app.decorate('timers', {
    own (name: string, start: () => () => void) {
      const set = { name, start, stop: undefined as (() => void) | undefined }
      sets.push(set)
      if (running) set.stop = start()
    },
    get running () { return running },
    settled: async () => { await trying; await leases?.whenRenewed() },
    get node () { return node },
    alive: async (other: string) => leases === undefined || await leases.ownerOf(`node:${other}`) === other,
    lastToLeave: async () => {
      if (leases === undefined) return true
      await leases.release(`serving:${node}`)
      return !await leases.othersHold('serving:')
    }
  })
  let node: string | undefined

  if (postgresUrl === undefined || app.store.readOnly) {
    // One node: every timer is its own (a read-only copy runs none: its plugins do not ask).
    running = true
    app.addHook('preClose', async () => stopAll())
    return
  }

  const termMs = leaseSeconds * 1000
  node = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  // Loaded only with DATABASE_URL: one machine keeps no PostgreSQL client in memory.
  const { Leases: PostgresLeases } = await import('./postgres/leases.ts')
  leases = await PostgresLeases.open({
    url: postgresUrl, owner: node, clock: app.clock, termMs,
    onLost: name => {
      if (name !== LEASE) return
      app.log.warn('another node took the timers\' lease: this node stops running them')
      stopAll()
    }
  })
  const lease = leases
  // This node's own lease: while it renews it, the connections it recorded are its to end.
  await lease.acquire(`node:${node}`)
  // Held while this node serves (until it starts to stop): whether it is the last one to leave.
  await lease.acquire(`serving:${node}`)
  const take = async () => {
    if (running && !lease.holds(LEASE)) {
      // Its renewals did not get through in time: another node may run them from now on.
      app.log.warn('the timers\' lease ran out: this node stops running them')
      stopAll()
    }
    if (!running && await lease.acquire(LEASE)) {
      app.log.info('this node runs the timers')
      startAll()
    }
  }
  await take()
  let tries: Timer | undefined = app.clock.setInterval(() => {
    trying = take().catch(error => app.log.warn({ err: error }, 'could not take the timers\' lease'))
  }, Math.max(1, Math.floor(termMs / 3)))
  app.addHook('preClose', async () => {
    tries?.cancel()
    tries = undefined
    const held = running
    stopAll()
    // A clean stop gives the timers up at once; a dead node's lease runs out.
    await trying
    if (held) await lease.release(LEASE).catch(() => {})
  })
  // After the broker has recorded the end of this node's connections: then its own lease goes.
  app.addHook('onClose', async () => {
    await lease.release(`serving:${node}`).catch(() => {})
    await lease.release(`node:${node}`).catch(() => {})
    await lease.close()
  })
}, { name: 'timer-owner', dependencies: ['store'] })
