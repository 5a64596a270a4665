import { crc32 } from 'node:zlib'
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import type { Clock } from '../clock.ts'
import type { DomainEvent, Metadata } from '../../events/index.ts'
import { sha256 } from '../accounts/secrets.ts'
import type { DeviceQueries } from '../devices/projections.ts'
import type { EventStore, Transaction } from '../store/event-store.ts'
import { DeviceMessageRefused, type ConnectedDevice, type DeviceKind, type Interpretation, type Refusal } from './device-kind.ts'
import type { FailedConnects } from './failed-connects.ts'
import { blockedKey, type RefusalKey, type RefusalLedger } from './refusal-ledger.ts'
import { RefusalWindow } from './refusal-window.ts'
import type { DevicePersistence } from './retained.ts'
import { namedAddress, peerAddress } from './proxy-protocol.ts'

export const MAX_PAYLOAD_BYTES = 256 * 1024
const EXCERPT_BYTES = 1024
/**
 * Refused messages are acknowledged (a device is never cut off for one message: Aedes closes
 * the connection when authorizePublish fails) and then delivered here, to nobody: `$` topics
 * match no wildcard subscription [MQTT-4.7.2-1] and devices may not subscribe to them.
 */
export const REFUSED_TOPIC = '$devicelog/refused'

const deviceKey = Symbol('device')
const refusalsKey = Symbol('refusals')
/** Set once a client is cut off for refusing too much: its disconnect is already recorded. */
const cutOffKey = Symbol('cut off')
type DeviceClient = Client & { [deviceKey]?: ConnectedDevice, [refusalsKey]?: RefusalWindow, [cutOffKey]?: boolean }

/** The device an authenticated client is, for the capabilities' broker listeners. */
export const deviceOf = (client: Client): ConnectedDevice | undefined => (client as DeviceClient)[deviceKey]
/** A client's device kind, for an observer's labels. */
const kindOf = (client: Client): string => (client as DeviceClient)[deviceKey]?.kind ?? 'unknown'

/**
 * What became of a message: recorded, refused (and recorded as such), refused like one on
 * record (counted into a summary), or a redelivery of one already recorded.
 */
export type MessageOutcome = 'recorded' | 'refused' | 'repeated' | 'duplicate'

/**
 * Told what the broker does as it does it (the service's metrics). Called on the hot path: each
 * call must be cheap, in memory, and must not throw.
 */
export interface BrokerObserver {
  /** A device's PUBLISH reached authorizePublish. */
  received(kind: string): void
  /** Its unit of work settled; `reason` for a refusal; `failed`: the log could not record it (not acknowledged). */
  settled(kind: string, outcome: MessageOutcome | 'failed', reason: string | undefined): void
  /** A QoS 1 or 2 message's acknowledgement is allowed, `seconds` after it reached authorizePublish. */
  acknowledged(kind: string, seconds: number): void
  connected(kind: string): void
  disconnected(kind: string): void
}

export interface DeviceBrokerOptions {
  /** Where publishes go between brokers: Aedes's own in-process emitter, or Redis shared by several nodes (REDIS_URL). */
  mq?: NonNullable<Parameters<typeof Aedes.createBroker>[0]>['mq']
  /** Several nodes: this node's name, carried by the connections it records. */
  node?: string
  store: EventStore
  devices: DeviceQueries
  /** Filled by each capability's plugin (app.deviceKinds.declare registers its mqtt part); read at every message. */
  kinds: ReadonlyMap<string, DeviceKind>
  log: FastifyBaseLogger
  clock: Clock
  /** More refusals than this within a minute cut the client off (recorded once). */
  maxRefusalsPerMinute: number
  /** Sessions and retained messages; the owned retained ones come from the log. */
  persistence: DevicePersistence
  /** Refusals like one on record are counted, not recorded one by one. */
  ledger: RefusalLedger
  /** Failed CONNECTs per address: held CONNACKs, then a block at the socket. */
  failedConnects: FailedConnects
  /** A failed CONNECT gives up its place among the connections being set up at once. */
  releasePlace: (client: Client) => void
  observer?: BrokerObserver
}

/** Where a client connects from: its TCP peer, or the HTTP request of MQTT over WebSocket. */
export function addressOf (client: Client): string {
  const { req, conn } = client as Client & { req?: { socket?: { remoteAddress?: string } }, conn: { remoteAddress?: string } }
  return (req === undefined ? undefined : namedAddress(req) ?? req.socket?.remoteAddress) ?? peerAddress(conn) ?? 'unknown'
}

/**
 * The embedded broker. Every hook is a small named function; only authorizePublish runs before
 * a QoS 1 PUBACK, so it holds its callback until the message's events are committed.
 */
export async function createDeviceBroker ({ mq, node, store, devices, kinds: kindByName, log, clock, maxRefusalsPerMinute, persistence, ledger, failedConnects, releasePlace, observer }: DeviceBrokerOptions): Promise<Aedes> {
  function metadataFor (client: Client, packet?: PublishPacket): Metadata {
    const metadata: Metadata = { actor: `mqtt:${client.id}` }
    if (packet !== undefined && packet.qos > 0) metadata.mqtt = { message_id: packet.messageId, crc32: crc32(packet.payload as Buffer) }
    return metadata
  }

  function rejectionEvent (client: Client, topic: string, payload: Buffer, refusal: Refusal): DomainEvent {
    return {
      type: 'MessageRejected',
      data: {
        topic,
        client_id: client.id,
        username: (client as DeviceClient)[deviceKey]?.username ?? null,
        reason: refusal.reason,
        detail: refusal.detail,
        payload_excerpt: payload.subarray(0, EXCERPT_BYTES).toString('utf8'),
        payload_bytes: payload.length
      }
    }
  }

  /**
   * One refusal policy for every device, as Mosquitto's: a refused message or subscription never
   * costs the connection. Only a client that keeps at it is cut off; true means cut it off now.
   */
  function overRefusalLimit (client: Client): boolean {
    const deviceClient = client as DeviceClient
    deviceClient[refusalsKey] ??= new RefusalWindow(clock, maxRefusalsPerMinute)
    return deviceClient[refusalsKey].add()
  }

  /**
   * Records the cut-off once (after the refusal that was one too many is committed); then the
   * caller's hook fails, which makes Aedes close the client.
   */
  async function cutOff (client: Client, streamId: string): Promise<void> {
    const deviceClient = client as DeviceClient
    if (deviceClient[cutOffKey] === true) return
    deviceClient[cutOffKey] = true
    await store.append(streamId, [{
      type: 'DeviceDisconnected',
      data: { client_id: client.id, reason: 'too_many_refusals', detail: deviceClient[refusalsKey]!.detail }
    }], { metadata: metadataFor(client), expectedVersion: 'any' })
      .catch(error => log.error({ err: error, clientId: client.id }, 'could not record a cut-off'))
  }

  function authenticate (client: Client, username: string | undefined, password: Buffer | undefined, done: (error: AuthenticateError | null, success: boolean | null) => void, caughtUp = false) {
    const credentials = username === undefined ? undefined : devices.credentials(username)
    // Several nodes: a device registered (or given a new password) on another node a moment ago
    // may not be in this replica yet; it is refused only on what every node had committed.
    if (store.shared && !caughtUp && username !== undefined && (credentials === undefined || (password !== undefined && sha256(password) !== credentials.password_sha256))) {
      store.caughtUp().then(() => authenticate(client, username, password, done, true), () => authenticate(client, username, password, done, true))
      return
    }
    if (credentials !== undefined && password !== undefined && sha256(password) === credentials.password_sha256) {
      (client as DeviceClient)[deviceKey] = {
        clientId: client.id, username: credentials.username, kind: credentials.kind, id: credentials.device_id, streamId: credentials.stream_id, networkId: credentials.network_id
      }
      return done(null, true)
    }
    const detail = credentials === undefined ? 'unknown username' : password === undefined ? 'no password' : 'wrong password'
    const address = addressOf(client)
    const failure = failedConnects.fail(address)
    // Held or not, a failure makes room for the devices that connect meanwhile.
    releasePlace(client)
    const key: RefusalKey = { streamId: credentials?.stream_id ?? 'broker', refusal: 'ConnectionRefused', source: address, username: username ?? null, reason: 'bad_credentials', topic: null, detail }
    const events: Array<{ streamId: string, event: DomainEvent }> = []
    const inFull = ledger.claim(key)
    if (inFull) {
      events.push({ streamId: key.streamId, event: { type: 'ConnectionRefused', data: { client_id: client.id, username: username ?? null, reason: 'bad_credentials', detail } } })
    }
    if (failure.blockedUntil !== undefined) {
      const until = new Date(failure.blockedUntil).toISOString()
      events.push({ streamId: 'broker', event: { type: 'SourceBlocked', data: { address, failures: failure.failures, until, detail: `${failure.failures} failed CONNECTs within a minute` } } })
    }
    const recorded = events.length === 0
      ? Promise.resolve()
      : store.transact(tx => { for (const { streamId, event } of events) tx.append(streamId, [event], { metadata: metadataFor(client), expectedVersion: 'any' }) })
    if (!inFull) ledger.counted(key)
    // The block's own record stands for the connections it closes at the socket, from now on.
    if (failure.blockedUntil !== undefined) ledger.claim(blockedKey(address))
    // Held from now (not from the commit), so the clock that releases it finds it waiting.
    const held = failure.delayMs === 0 ? undefined : new Promise<void>(resolve => clock.setTimeout(resolve, failure.delayMs))
    const logged = recorded.catch(error => {
      if (inFull) ledger.forget(key)
      if (failure.blockedUntil !== undefined) ledger.forget(blockedKey(address))
      log.error({ err: error }, 'could not record a refused connection')
    })
    void Promise.all([logged, held]).then(() => {
      const error = new Error('bad username or password') as AuthenticateError
      error.returnCode = 4
      done(error, false)
    })
  }

  function interpret (device: ConnectedDevice | undefined, packet: PublishPacket): Exclude<Interpretation, { refused: true }> | ({ streamId: string } & Refusal) {
    const streamId = device?.streamId ?? 'broker'
    if (device === undefined) return { streamId, reason: 'bad_credentials', detail: 'not a device' }
    if (packet.topic.startsWith('$')) return { streamId, reason: 'reserved_topic', detail: `${packet.topic} is reserved` }
    const payload = packet.payload as Buffer
    if (payload.length > MAX_PAYLOAD_BYTES) {
      return { streamId, reason: 'oversize', detail: `payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}` }
    }
    const kind = kindByName.get(device.kind)
    if (kind === undefined) return { streamId, reason: 'unknown_topic', detail: `no handler for ${device.kind}` }
    for (const other of kindByName.values()) {
      if (other !== kind && other.reserves?.(packet.topic) === true) return { streamId, reason: 'foreign_topic', detail: `${packet.topic} is reserved for ${other.kind}` }
    }
    const interpretation = kind.interpretPublish(device, packet.topic, payload)
    if (interpretation.refused) return { streamId, reason: interpretation.reason, detail: interpretation.detail }
    return interpretation
  }

  // The two below are declared once, not as closures in each message's hook: the hot path makes
  // no function per message beyond those it hands to the store and to the promise.

  /** What identifies a refused message in the refusal ledger. */
  function messageRefusalKey (client: Client, packet: PublishPacket, streamId: string, metadata: Metadata, { reason, detail }: Refusal): RefusalKey {
    return { streamId, refusal: 'MessageRejected', source: client.id, username: deviceOf(client)?.username ?? null, reason, topic: packet.topic, detail, payload: metadata.mqtt?.crc32 ?? crc32(packet.payload as Buffer) }
  }

  /** Inside a unit of work: the refused message recorded as a rejection. */
  function recordRejection (tx: Transaction, client: Client, packet: PublishPacket, streamId: string, metadata: Metadata, expectedVersion: 'any' | undefined, refusal: Refusal): MessageOutcome {
    tx.append(streamId, [rejectionEvent(client, packet.topic, packet.payload as Buffer, refusal)], { metadata, expectedVersion })
    return 'refused'
  }

  /**
   * Only this hook runs before Aedes writes the PUBACK, so it holds its callback until the
   * message's events are committed. The unit of work only reads and appends; the refusal count
   * and the cut-off act after the commit, on what was committed.
   */
  function authorizePublish (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) {
    if (client === null) return done(null)
    // Measured only when watched: the monotonic clock, not the injected one (a duration, not a time of record).
    const arrived = observer === undefined ? 0 : performance.now()
    const kind = kindOf(client)
    observer?.received(kind)
    const payload = packet.payload as Buffer
    const outcome = interpret((client as DeviceClient)[deviceKey], packet)
    const metadata = metadataFor(client, packet)
    // A redelivery is checked against the committed log, so it waits for a unit before it in its group.
    const independent = packet.dup ? undefined : 'any' as const
    // A refusal known before any unit of work: one like it on record (or being recorded) is only counted.
    const knownRefusal = 'reason' in outcome ? messageRefusalKey(client, packet, outcome.streamId, metadata, outcome) : undefined
    const claimed = knownRefusal !== undefined && ledger.claim(knownRefusal)
    let refusalKey = knownRefusal
    // (A repeat appends nothing, but still waits its turn: its PUBACK follows the first one's commit.)
    const decided = knownRefusal !== undefined && !claimed ? store.transact((): MessageOutcome => 'repeated') : store.transact((tx): MessageOutcome => {
      if (packet.dup && metadata.mqtt !== undefined && devices.alreadyRecorded(outcome.streamId, metadata)) return 'duplicate'
      if ('reason' in outcome) return recordRejection(tx, client, packet, outcome.streamId, metadata, independent, outcome)
      let events: DomainEvent[]
      try {
        events = outcome.decide(tx)
      } catch (error) {
        if (!(error instanceof DeviceMessageRefused)) throw error
        // Decided in the unit, so only read here: marked as on record after the commit.
        refusalKey = messageRefusalKey(client, packet, outcome.streamId, metadata, error)
        return ledger.isRepeat(refusalKey) ? 'repeated' : recordRejection(tx, client, packet, outcome.streamId, metadata, independent, error)
      }
      // The device kind parsed the payload with the message schema the events are made of.
      tx.append(outcome.streamId, events, { metadata, validated: true, expectedVersion: outcome.stateless === true ? independent : undefined })
      return 'recorded'
    })
    decided.then(result => {
      observer?.settled(kind, result, result === 'refused' || result === 'repeated' ? refusalKey!.reason : undefined)
      if (result === 'refused' && !claimed) ledger.recorded(refusalKey!)
      if (result === 'repeated') ledger.counted(refusalKey!)
      // The hot path stays synchronous: only the refusal that is one too many waits for its record.
      if ((result === 'refused' || result === 'repeated') && overRefusalLimit(client)) return cutOff(client, outcome.streamId).then(() => done(new Error('too many refusals')))
      if ((client as DeviceClient)[cutOffKey] === true) return done(new Error('too many refusals'))
      if (result !== 'recorded') {
        // Recorded (and forwarded, if it was valid) the first time; refused ones reach nobody.
        packet.topic = REFUSED_TOPIC
        packet.retain = false
      }
      if (observer !== undefined && packet.qos > 0) observer.acknowledged(kind, (performance.now() - arrived) / 1000)
      done(null)
    }, (error: unknown) => {
      observer?.settled(kind, 'failed', undefined)
      if (claimed) ledger.forget(knownRefusal!)
      // Not committed, so not acknowledged: closing the connection makes the client resend.
      // (A storage fault is the store's to log, once per episode, not once per message.)
      if ((error as { code?: string }).code !== 'DL_STORE_UNAVAILABLE') log.error({ err: error, topic: packet.topic, clientId: client.id }, 'could not record a message')
      done(error as Error)
    })
  }

  function authorizeSubscribe (client: Client | null, subscription: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void) {
    if (client === null) return done(null, subscription)
    const device = (client as DeviceClient)[deviceKey]
    const kind = device === undefined ? undefined : kindByName.get(device.kind)
    const refusal: Refusal | null = device === undefined || kind === undefined
      ? { reason: 'bad_credentials', detail: 'not a device' }
      : kind.refuseSubscription(device, subscription.topic)
    if (refusal === null) return done(null, subscription)
    // A refused subscription gets failure code 0x80 in the SUBACK; the connection stays open.
    const streamId = device?.streamId ?? 'broker'
    const key: RefusalKey = { streamId, refusal: 'SubscriptionRefused', source: client.id, username: device?.username ?? null, ...refusal, topic: subscription.topic }
    const recorded = !ledger.claim(key)
      ? Promise.resolve(ledger.counted(key))
      : store.append(streamId, [{
        type: 'SubscriptionRefused',
        data: { topic: subscription.topic, client_id: client.id, username: device?.username ?? null, ...refusal }
      }], { metadata: metadataFor(client), expectedVersion: 'any' }).then(() => {}, (error: unknown) => {
        ledger.forget(key)
        throw error
      })
    recorded.then(async () => {
      // The refusal is recorded even when it is the one too many.
      if (overRefusalLimit(client)) await cutOff(client, streamId)
      if ((client as DeviceClient)[cutOffKey] === true) return done(new Error('too many refusals'))
      done(null, null)
    }, (error: unknown) => done(error as Error))
  }

  /** A kind may narrow what its clients are sent, message by message (an integration's account: its own network's). */
  function authorizeForward (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const device = (client as DeviceClient)[deviceKey]
    const forward = device === undefined ? undefined : kindByName.get(device.kind)?.forward
    return forward === undefined || forward(device!, packet.topic) ? packet : null
  }

  const aedes = await Aedes.createBroker({ authenticate, authorizePublish, authorizeSubscribe, authorizeForward, persistence, ...(mq === undefined ? {} : { mq }) })

  // A SUBACK and the retained messages it releases leave in one write (one syscall per
  // subscribing device, not two: a storm of reconnecting devices spends a tenth of its time
  // writing). Aedes emits 'subscribe' once it has written the SUBACK (corked until its next tick),
  // then reads the retained ones (from memory) and writes each in a setImmediate: the connection
  // stays corked until the immediates after those.
  aedes.on('subscribe', (_subscriptions, client) => {
    const conn = client.conn as Client['conn'] & { cork?: () => void, uncork?: () => void }
    if (conn.cork === undefined) return
    conn.cork()
    setImmediate(() => setImmediate(() => conn.uncork!()))
  })

  // Presence: every accepted connection and its end, on the device's stream.
  const recordPresence = (client: Client, event: DomainEvent) => {
    const device = deviceOf(client)
    if (device === undefined) return
    // Several nodes: the connection is this node's, to end (or, once its lease has run out, the others').
    const metadata = node === undefined ? metadataFor(client) : { ...metadataFor(client), node }
    store.append(device.streamId, [event], { metadata, expectedVersion: 'any' })
      .catch(error => log.warn({ err: error, clientId: client.id }, 'could not record presence'))
  }
  // Aedes can report the end of a client it never reported connected (one closed while taking
  // over a client id): only those it did report are counted out.
  const counted = new WeakSet<Client>()
  aedes.on('client', client => {
    counted.add(client)
    observer?.connected(kindOf(client))
    recordPresence(client, { type: 'DeviceConnected', data: { client_id: client.id } })
  })
  // Why a connection ended, as far as the broker can tell: keep-alive, a DISCONNECT, or lost.
  const timedOut = new WeakSet<Client>()
  const hadWill = new WeakSet<Client>()
  aedes.on('keepaliveTimeout', client => { timedOut.add(client) })
  aedes.on('clientReady', client => { if ((client as Client & { will?: unknown }).will != null) hadWill.add(client) })
  aedes.on('clientDisconnect', client => {
    if (counted.delete(client)) observer?.disconnected(kindOf(client))
    if ((client as DeviceClient)[cutOffKey] === true) return
    const clean = (client as Client & { _disconnected?: boolean })._disconnected === true
    // The will goes through authorizePublish like any message: recorded, or refused and recorded.
    const will = !clean && hadWill.has(client) ? '; it left a last will' : ''
    const [reason, detail] = timedOut.has(client)
      ? ['keepalive_timeout', `nothing arrived within 1.5 × its keep-alive${will}`] as const
      : aedes.closed
        ? ['service_stopped', 'the service stopped and closed the connection'] as const
        : ['closed', clean ? 'the device disconnected' : `the connection was lost${will}`] as const
    recordPresence(client, { type: 'DeviceDisconnected', data: { client_id: client.id, reason, detail } })
  })
  aedes.on('subscribe', (subscriptions, client) => {
    const device = deviceOf(client)
    // Aedes reports refused subscriptions with their SUBACK code, 128, as qos.
    const granted = subscriptions.filter(s => (s.qos as number) !== 128).map(s => s.topic)
    if (device === undefined || granted.length === 0) return
    kindByName.get(device.kind)?.subscribed?.(device, granted)
  })
  return aedes
}
