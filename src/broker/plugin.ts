import { once } from 'node:events'
import { createServer, type AddressInfo, type Server } from 'node:net'
import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import fp from 'fastify-plugin'
import { createWebSocketStream } from 'ws'
import type { Socket } from 'node:net'
import { nameAddress, peerAddress, readProxyHeader, trustedProxies } from './proxy-protocol.ts'
import { admitConnections } from './admission.ts'
import { FailedConnects } from './failed-connects.ts'
import { blockedKey, RefusalLedger, SUMMARY_WINDOW_MS } from './refusal-ledger.ts'
import { createDeviceBroker, deviceOf, type BrokerObserver } from './broker.ts'
import type { DeviceKind } from './device-kind.ts'
import { DevicePersistence, type OwnedRetained } from './retained.ts'
import type { Clock } from '../clock.ts'

/** Connections waiting to be accepted: a fleet's worth, as far as the kernel allows. */
const CONNECT_BACKLOG = 65_535
/**
 * Connections between accept and CONNACK at once. Measured with 10,000 sensors reconnecting at
 * once (npm run bench:fleet): 50 gave the fastest storm and GET /status p99 under 40 ms; 100 and
 * 200 made both worse (p99 76 and 136 ms), 25 made the storm slower. Handing the broker a fixed
 * number per turn of the event loop instead did not bound the work (p99 245 to 800 ms).
 */
const CONNECTS_IN_SETUP = 50
/** A connection that has not had its CONNACK after this long gives its place to the next. */
const SETUP_HOLD_MS = 1000

export interface ServicePublish {
  topic: string
  payload: string
  qos: 0 | 1
  retain: boolean
}

export interface DeviceBrokerDecorator {
  readonly aedes: Aedes
  /** Start accepting MQTT over TCP; resolves with the bound port (0 picks a free one). */
  listen(port: number, host: string): Promise<number>
  /** Publish as the service itself (no client, so no authorization hooks). */
  publish(message: ServicePublish): Promise<void>
  /** A capability tells the broker how its devices behave. */
  registerKind(kind: DeviceKind): void
  /** Whether a capability registered this kind (every kind of the list must). */
  hasKind(name: string): boolean
  /**
   * A capability's retained topics, read from its projection when a device subscribes: what it
   * publishes there (retained) is delivered to current subscribers and not kept by the broker.
   */
  ownRetained(source: OwnedRetained): void
  /** Run before the broker closes its connections at shutdown (a last publish to the clients still connected). */
  beforeClose(task: () => Promise<void>): void
  /** Close every connection of a device whose credentials were withdrawn (a removed charger). */
  disconnectDevice(streamId: string): void
  /** Accepted MQTT connections waiting for their turn to be set up (after a power cut, the fleet). */
  readonly connectionsWaiting: number
  /**
   * The refusal ledger the broker keeps (a refusal like one on record is counted into a summary a
   * minute, not recorded again): devices that speak another protocol (a charger's WebSocket) use it too.
   */
  readonly refusals: RefusalLedger
  /** The MQTT port, once listening (shown to people registering a device). */
  readonly port: number | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    broker: DeviceBrokerDecorator
  }
}

/**
 * The embedded Aedes broker, reachable over TCP (listen) and over WebSocket at /mqtt on the
 * HTTP port. On close it stops accepting, then closes every client, before the store closes.
 */
export interface BrokerOptions {
  maxRefusalsPerMinute: number
  /** Failed CONNECTs from one address within a minute before it is blocked. */
  maxAuthFailuresPerMinute: number
  /** How long a blocked address's connections are closed at the socket. */
  authBlockSeconds: number
  /** Told of every message and connection as it happens (the metrics); the broker knows no more of it. */
  observer?: BrokerObserver
  /** REDIS_URL: brokers of several nodes share their publishes through Redis, so a message reaches a device on any node. */
  redisUrl?: string
  /** TRUST_PROXY: a balancer's addresses; its MQTT connections begin with a PROXY header naming the device's address. */
  trustProxy?: readonly string[]
}

/**
 * Aedes's emitter over Redis, on connections of our own: mqemitter-redis does not wait for QUIT's
 * answer at close, and one that the socket's end beats ("Connection is closed") would be an
 * unhandled rejection, which ends a Node process. Redis going away is said once, not per retry,
 * and ends nothing: ioredis connects again (and subscribes again) when it is back.
 */
async function redisEmitter (url: string, log: FastifyBaseLogger) {
  // Loaded only with REDIS_URL: one machine keeps neither client in memory.
  const [{ Redis }, { default: MQEmitterRedis }] = await Promise.all([import('ioredis'), import('mqemitter-redis')])
  const connection = () => {
    const redis = new Redis(url)
    const quit = redis.quit.bind(redis)
    redis.quit = (() => quit().catch(() => 'OK')) as typeof redis.quit
    return redis
  }
  const subConn = connection()
  const pubConn = connection()
  const emitter = MQEmitterRedis({ subConn, pubConn })
  // Its close QUITs and waits for both connections' end, which never comes while Redis is away:
  // then the connections are dropped and the emitter closes at once.
  const close = emitter.close.bind(emitter)
  emitter.close = ((done: () => void) => {
    if (subConn.status === 'ready' && pubConn.status === 'ready') return close(done)
    subConn.disconnect()
    pubConn.disconnect()
    ;(emitter as unknown as { _close(done: () => void): void })._close(done)
    return emitter
  }) as typeof emitter.close
  let away = false
  // Its errors go to `state`, which its types do not list.
  ;(emitter as unknown as { state: NodeJS.EventEmitter }).state.on('error', (error: Error) => {
    if (away) return
    away = true
    log.warn({ err: error }, "Redis is unreachable: until it is back, publishes reach only this node's devices")
  })
  subConn.on('ready', () => {
    if (!away) return
    away = false
    log.info('Redis is back: publishes reach every node again')
  })
  return Object.assign(emitter, { connected: () => subConn.status === 'ready' && pubConn.status === 'ready' })
}

type RedisEmitter = Awaited<ReturnType<typeof redisEmitter>>

/** How long a stopping node waits for its last publishes to come back from Redis. */
const LAST_PUBLISHES_WAIT_MS = 2000

/**
 * Resolves once what this node published so far has come back from Redis to its own subscribers.
 * Redis answers a publish before it delivers it, so a last message at shutdown (Home Assistant's
 * `offline`) would race the close that ends its subscribers' connections. A marker published
 * after it arrives after it: Redis keeps one connection's order.
 */
function lastPublishesDelivered (mq: RedisEmitter, brokerId: string, clock: Clock): Promise<void> {
  if (!mq.connected()) return Promise.resolve()
  const topic = `$SYS/${brokerId}/delivered`
  return new Promise<void>(resolve => {
    const timeout = clock.setTimeout(done, LAST_PUBLISHES_WAIT_MS)
    function marker (_packet: unknown, callback: () => void) {
      callback()
      done()
    }
    function done () {
      timeout.cancel()
      mq.removeListener(topic, marker)
      resolve()
    }
    mq.on(topic, marker, () => mq.emit({ topic, payload: Buffer.alloc(0) }, error => { if (error) done() }))
  })
}

/** How often the node that runs the timers looks for connections of nodes whose lease ran out. */
const LOST_NODE_SWEEP_MS = 5000

export default fp<BrokerOptions>(async function brokerPlugin (app, { maxRefusalsPerMinute, maxAuthFailuresPerMinute, authBlockSeconds, observer, redisUrl, trustProxy = [] }) {
  // Devices the log still calls connected were cut off by an unclean stop: say so first.
  // (A read-only copy is the past: there they were connected, and nothing is recorded. On a log
  // other nodes share, they may be connected to one of them: not this node's to end.)
  const stale = app.store.readOnly || app.store.shared ? [] : app.devices.connected()
  if (stale.length > 0) {
    const metadata = { actor: 'system' }
    await app.store.transact(tx => {
      for (const { stream_id, client_id } of stale) {
        tx.append(stream_id, [{
          type: 'DeviceDisconnected', data: { client_id, reason: 'service_stopped', detail: 'the service stopped while it was connected' }
        }], { metadata })
      }
    })
  }
  const kinds = new Map<string, DeviceKind>()
  const persistence = new DevicePersistence()
  const ledger = new RefusalLedger(app.clock)
  const failedConnects = new FailedConnects(app.clock, { maxPerMinute: maxAuthFailuresPerMinute, blockMs: authBlockSeconds * 1000 })
  /** A blocked address's connection, closed before any MQTT: counted against its SourceBlocked. */
  const refuseBlocked = (address: string | undefined): boolean => {
    if (address === undefined || !failedConnects.isBlocked(address)) return false
    ledger.counted(blockedKey(address))
    return true
  }
  const admission = admitConnections({
    concurrent: CONNECTS_IN_SETUP,
    holdMs: SETUP_HOLD_MS,
    clock: app.clock,
    // Called once listening, after the broker below exists.
    handle: socket => aedes.handle(socket),
    refuse: socket => refuseBlocked(peerAddress(socket))
  })
  const mq = redisUrl === undefined ? undefined : await redisEmitter(redisUrl, app.log)
  const aedes = await createDeviceBroker({
    // Closed by Aedes when it closes.
    mq,
    node: app.timers.node,
    store: app.store,
    devices: app.devices,
    kinds,
    log: app.log,
    clock: app.clock,
    maxRefusalsPerMinute,
    persistence,
    ledger,
    failedConnects,
    releasePlace: client => admission.release((client as Client & { conn: Socket }).conn),
    observer
  })
  aedes.on('connackSent', (_packet, client: Client) => admission.release((client as Client & { conn: Socket }).conn))
  if (mq !== undefined) {
    // Brokers over Redis: what a device retains through another node (a plug's last will) is kept
    // here too, so a subscriber on this node gets it. The service's own retained topics are the
    // log's projections, on every node already.
    mq.on('#', (message, done) => {
      // Aedes emits its packets: the emitter's types know only a topic.
      const packet = message as AedesPublishPacket & { brokerId?: string }
      if (packet.retain && packet.brokerId !== aedes.id) void persistence.storeRetained(packet)
      done()
    })
  }

  // Several nodes: a node that stopped renewing its lease left its devices shown connected; the
  // node that runs the timers records their end, once the lease has run out.
  const self = app.timers.node
  if (self !== undefined) {
    app.timers.own('connections of lost nodes', () => {
      let sweeping = false
      const sweep = async () => {
        const elsewhere = app.devices.connectedElsewhere(self)
        const nodes = [...new Set(elsewhere.map(device => device.node))]
        for (const other of nodes) {
          if (await app.timers.alive(other)) continue
          const ended = elsewhere.filter(device => device.node === other)
          await app.store.transact(tx => {
            for (const { stream_id: streamId, client_id: clientId } of ended) {
              // The metadata's node is the connection's, as when its own node records its end.
              tx.append(streamId, [{ type: 'DeviceDisconnected', data: { client_id: clientId, reason: 'node_lost', detail: `its node ${other} stopped renewing its lease` } }],
                { metadata: { actor: 'system', node: other }, expectedVersion: 'any' })
            }
          })
          app.log.warn({ node: other, devices: ended.length }, 'a node stopped renewing its lease: its devices are recorded as disconnected')
        }
      }
      const timer = app.clock.setInterval(() => {
        if (sweeping) return
        sweeping = true
        sweep().catch(error => app.log.warn({ err: error }, 'could not end the connections of a lost node')).finally(() => { sweeping = false })
      }, LOST_NODE_SWEEP_MS)
      return () => timer.cancel()
    })
  }

  // Each minute: the summaries of refusals counted rather than recorded, and forgetting the
  // addresses that stopped failing.
  const recordSummaries = () => {
    const summaries = ledger.closeWindow()
    if (summaries.length === 0) return Promise.resolve()
    return app.store.transact(tx => {
      for (const { streamId, event } of summaries) tx.append(streamId, [event], { metadata: { actor: 'system' }, expectedVersion: 'any' })
    }).catch(error => app.log.error({ err: error }, 'could not record the refusals\' summaries'))
  }
  const windows = app.clock.setInterval(() => {
    failedConnects.sweep()
    void recordSummaries()
  }, SUMMARY_WINDOW_MS)
  const closingTasks: Array<() => Promise<void>> = []
  let tcp: Server | undefined
  let tcpPort: number | undefined

  app.decorate('broker', {
    aedes,
    async listen (port: number, host: string) {
      const fromBalancer = trustedProxies(trustProxy)
      tcp = createServer(socket => fromBalancer(socket.remoteAddress) ? readProxyHeader(socket, app.clock, admission.accept) : admission.accept(socket))
      // After a power cut every device connects at once: Node's default backlog (511) would drop
      // the rest of the SYNs, and each dropped one waits a second or more to try again. The
      // kernel caps it at net.core.somaxconn.
      tcp.listen({ port, host, backlog: CONNECT_BACKLOG })
      await once(tcp, 'listening')
      tcpPort = (tcp.address() as AddressInfo).port
      return tcpPort
    },
    registerKind (kind: DeviceKind) { kinds.set(kind.kind, kind) },
    hasKind: (name: string) => kinds.has(name),
    ownRetained (source: OwnedRetained) { persistence.own(source) },
    beforeClose (task: () => Promise<void>) { closingTasks.push(task) },
    disconnectDevice (streamId: string) {
      // Aedes keeps its connected clients by id; its types do not list the map.
      for (const client of Object.values((aedes as unknown as { clients: Record<string, Client> }).clients)) {
        if (deviceOf(client)?.streamId === streamId) client.close()
      }
    },
    get port () { return tcpPort },
    get connectionsWaiting () { return admission.waiting },
    refusals: ledger,
    publish (message: ServicePublish) {
      return new Promise<void>((resolve, reject) => {
        aedes.publish({ cmd: 'publish', topic: message.topic, payload: Buffer.from(message.payload), qos: message.qos, retain: message.retain, dup: false },
          error => { if (error) reject(error); else resolve() })
      })
    }
  })

  app.get('/mqtt', { websocket: true, schema: { hide: true } }, (socket, request) => {
    // request.ip: the device's address, as a trusted balancer forwarded it (else the TCP peer).
    if (refuseBlocked(request.ip)) return socket.terminate()
    nameAddress(request.raw, request.ip)
    aedes.handle(createWebSocketStream(socket), request.raw)
  })

  app.addHook('preClose', async () => {
    for (const task of closingTasks) await task().catch(error => app.log.warn({ err: error }, 'a task before the broker closed failed'))
    if (mq !== undefined) await lastPublishesDelivered(mq, aedes.id, app.clock)
    const closing = tcp === undefined ? Promise.resolve() : new Promise(resolve => tcp!.close(resolve))
    await new Promise<void>(resolve => aedes.close(() => resolve()))
    await closing
    windows.cancel()
    await recordSummaries()
  })
}, { name: 'broker', dependencies: ['store', 'devices', 'timer-owner'] })
