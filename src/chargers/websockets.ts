import { randomUUID } from 'node:crypto'
import { crc32 } from 'node:zlib'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import type { WebSocket } from 'ws'
import { z } from 'zod'
import { ChargerSocketMessage } from '../../events/chargers.ts'
import type { EventOf, Metadata } from '../../events/index.ts'
import { sha256 } from '../accounts/secrets.ts'
import type { RefusalKey } from '../broker/refusal-ledger.ts'
import { RefusalWindow } from '../broker/refusal-window.ts'
import { Audiences } from '../live/audiences.ts'
import { sendBounded } from '../live/websocket.ts'
import { decideCharger, type ChargerEvent } from './decider.ts'
import type { ChargerQueries, ChargerRow } from './projections.ts'

/** Close codes: the reference's clients see why they were turned away. */
export const CLOSE_BAD_TOKEN = 4401
export const CLOSE_UNKNOWN = 4404
/**
 * Every this often each charger and widget socket is pinged; one that did not answer the last
 * ping is cut off, so a charger that vanished without a close is recorded as disconnected
 * (the heartbeat the reference listed as missing).
 */
export const HEARTBEAT_MS = 30_000

export interface ChargerSocketsOptions {
  chargers: ChargerQueries
  /** 1000 / CHARGER_MAX_RATE. */
  minIntervalMs: number
  /** The refusal policy's limit (MQTT_MAX_REFUSALS_PER_MINUTE), as on MQTT. */
  maxRefusalsPerMinute: number
}

/** Close code for a charger cut off by the refusal policy (policy violation). */
export const CLOSE_TOO_MANY_REFUSALS = 1008

const Params = z.object({ id: z.string() })
const TokenQuery = z.object({ token: z.string().optional() })
const excerpt = (text: string) => text.slice(0, 1024)

/**
 * The reference's two WebSockets: `/chargers/<id>` where a charger sends its state of charge,
 * and `/widgets/<id>` where its paired widget is told the charging status, at connect (if
 * known) and then only when it changes, pushed as ChargingStatusChanged commits.
 */
const chargerSockets: FastifyPluginAsyncZod<ChargerSocketsOptions> = async function (app, { chargers, minIntervalMs, maxRefusalsPerMinute }) {
  const widgets = new Audiences<WebSocket>()
  const connections = new Audiences<WebSocket>()

  /** The pair, if the id and token are right; otherwise the socket is closed with the reason. */
  function admit (socket: WebSocket, pair: ChargerRow | undefined, token: string | undefined, what: string): pair is ChargerRow {
    if (pair === undefined) {
      socket.close(CLOSE_UNKNOWN, `unknown ${what}`)
      return false
    }
    if (token === undefined || sha256(token) !== pair.token_sha256) {
      socket.close(CLOSE_BAD_TOKEN, 'missing or wrong token')
      return false
    }
    return true
  }

  const answered = new WeakMap<WebSocket, boolean>()
  const timedOut = new WeakSet<WebSocket>()
  type Ending = Pick<EventOf<'DeviceDisconnected'>['data'], 'reason' | 'detail'>
  /** Each open charger socket's one way to record its end (once: whichever comes first, close, cut-off or stop). */
  const open = new Map<WebSocket, (ending: Ending) => Promise<void>>()
  const track = (audiences: Audiences<WebSocket>, key: string, socket: WebSocket) => {
    answered.set(socket, true)
    socket.on('pong', () => answered.set(socket, true))
    socket.on('close', audiences.join(key, socket))
  }
  const heartbeat = app.clock.setInterval(() => {
    for (const socket of [...connections.members(), ...widgets.members()]) {
      if (answered.get(socket) === false) { timedOut.add(socket); socket.terminate(); continue }
      answered.set(socket, false)
      socket.ping()
    }
  }, HEARTBEAT_MS)

  const unsubscribe = app.store.subscribe(events => {
    for (const event of events) {
      if (event.type === 'ChargingStatusChanged') {
        const audience = widgets.of(event.data.widget_id)
        if (audience === undefined) continue
        const text = JSON.stringify({ event: 'chargingStatus', data: { status: event.data.status } })
        for (const socket of audience) sendBounded(socket, text)
      } else if (event.type === 'ChargerRemoved') {
        for (const socket of connections.of(event.data.charger_id) ?? []) socket.close(CLOSE_UNKNOWN, 'the charger was removed')
        for (const socket of widgets.of(event.data.widget_id) ?? []) socket.close(CLOSE_UNKNOWN, 'the charger was removed')
      }
    }
  })
  app.addHook('preClose', async () => {
    heartbeat.cancel()
    unsubscribe()
    // Recorded before the log closes, not left to the next start's clean-up.
    await Promise.all([...open.values()].map(end => end({ reason: 'service_stopped', detail: 'the service stopped and closed the connection' })))
    for (const socket of [...widgets.members(), ...connections.members()]) socket.close(1001, 'service stopping')
  })

  app.get('/chargers/:id', {
    websocket: true,
    schema: {
      security: [{ pair_token: [] }],
      description: 'A charger sends `{"event": "StateOfCharge", "data": {"soc": 0..100}}`. A bad message or one past CHARGER_MAX_RATE gets ' +
        '`{"event": "error", "data": {reason, message}}` and stays open. An unknown id closes with 4404, a missing or wrong token with 4401.',
      params: Params,
      querystring: TokenQuery
    }
  }, (socket, request) => {
    const chargerId = request.params.id
    const pair = chargers.charger(chargerId)
    if (!admit(socket, pair, request.query.token, 'charger')) return
    const streamId = `charger-${chargerId}`
    const clientId = `ws:${randomUUID()}`
    const topic = `/chargers/${chargerId}`
    const metadata = (): Metadata => ({ actor: `charger:${chargerId}` })
    const failed = (error: unknown) => request.log.warn({ err: error, chargerId }, 'could not record a charger event')
    track(connections, chargerId, socket)
    app.store.append(streamId, [{ type: 'DeviceConnected', data: { client_id: clientId } }], { metadata: metadata() }).catch(failed)
    const end = async (ending: Ending): Promise<void> => {
      if (!open.delete(socket)) return
      await app.store.append(streamId, [{ type: 'DeviceDisconnected', data: { client_id: clientId, ...ending } }], { metadata: metadata() })
        .then(() => undefined, failed)
    }
    open.set(socket, end)
    socket.on('close', () => void end(timedOut.has(socket)
      ? { reason: 'keepalive_timeout', detail: `no answer to a ping within ${HEARTBEAT_MS / 1000} s` }
      : { reason: 'closed', detail: 'the WebSocket closed' }))

    // The same refusal policy as on MQTT: a refusal never costs the connection, too many in a minute do.
    const refusals = new RefusalWindow(app.clock, maxRefusalsPerMinute)
    const refused = () => {
      if (!refusals.add() || !open.has(socket)) return
      void end({ reason: 'too_many_refusals', detail: refusals.detail })
      socket.close(CLOSE_TOO_MANY_REFUSALS, 'too many refused messages')
    }
    // The refusal ledger of MQTT's devices: a refusal like one on record is counted into the
    // minute's summary, not recorded again, so a flood of bad messages adds a bounded number of events.
    const ledger = app.broker.refusals
    const keyOf = (reason: RefusalKey['reason'], detail: string, text: string): RefusalKey =>
      ({ streamId, refusal: 'MessageRejected', source: clientId, username: chargerId, reason, topic, detail, payload: crc32(text) })
    const reject = (reason: 'invalid_json' | 'invalid_payload', detail: string, text: string) => {
      sendBounded(socket, JSON.stringify({ event: 'error', data: { reason, message: detail } }))
      const key = keyOf(reason, detail, text)
      if (ledger.claim(key)) {
        app.store.append(streamId, [{
          type: 'MessageRejected',
          data: { topic, client_id: clientId, username: chargerId, reason, detail, payload_excerpt: excerpt(text), payload_bytes: Buffer.byteLength(text) }
        }], { metadata: metadata() }).catch(error => {
          ledger.forget(key)
          failed(error)
        })
      } else {
        ledger.counted(key)
      }
      refused()
    }

    socket.on('message', raw => {
      const text = raw.toString()
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch (error) {
        return reject('invalid_json', (error as Error).message, text)
      }
      const message = ChargerSocketMessage.safeParse(json)
      if (!message.success) return reject('invalid_payload', 'expected {"event": "StateOfCharge", "data": {"soc": 0..100}}', text)
      app.store.transact(tx => {
        const charger = chargers.charger(chargerId)
        // Removed while this reading was on its way: refused and recorded, like any other.
        const events: ChargerEvent[] = charger === undefined
          ? [{ type: 'MessageRejected', data: { topic, client_id: clientId, username: chargerId, reason: 'unknown_topic', detail: 'this charger was removed', payload_excerpt: excerpt(text), payload_bytes: Buffer.byteLength(text) } }]
          : decideCharger({
            type: 'ReportStateOfCharge', soc: message.data.data.soc, via: 'websocket', at: tx.now, min_interval_ms: minIntervalMs, client_id: clientId, topic
          }, charger.state)
        const rejection = events.find(e => e.type === 'MessageRejected')
        const key = rejection === undefined ? undefined : keyOf(rejection.data.reason, rejection.data.detail, text)
        // One like it on record: only counted, after the commit (a unit only reads and appends).
        const repeated = key !== undefined && ledger.isRepeat(key)
        if (!repeated) tx.append(streamId, events, { metadata: metadata() })
        return { rejection, key, repeated }
      }).then(({ rejection, key, repeated }) => {
        if (rejection === undefined || key === undefined) return
        if (repeated) ledger.counted(key)
        else ledger.recorded(key)
        sendBounded(socket, JSON.stringify({ event: 'error', data: { reason: rejection.data.reason, message: rejection.data.detail } }))
        refused()
      }, failed)
    })
  })

  app.get('/widgets/:id', {
    websocket: true,
    schema: {
      security: [{ pair_token: [] }],
      description: 'A widget receives `{"event": "chargingStatus", "data": {"status"}}`: at connect if known, then on each change. ' +
        'An unknown id closes with 4404, a missing or wrong token with 4401.',
      params: Params,
      querystring: TokenQuery
    }
  }, (socket, request) => {
    const pair = chargers.widget(request.params.id)
    if (!admit(socket, pair, request.query.token, 'widget')) return
    track(widgets, pair.widget_id, socket)
    const status = pair.state.charging_status
    if (status !== null) sendBounded(socket, JSON.stringify({ event: 'chargingStatus', data: { status } }))
  })
}

export default chargerSockets
