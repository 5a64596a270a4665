import { spawn } from 'node:child_process'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { ManualClock, systemClock } from '../src/clock.ts'
import { FULL_RECORDS_PER_WINDOW } from '../src/broker/refusal-ledger.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { cleanEnv, root } from './helpers/process.ts'
import { connectMqtt, createSensor, http, publish, startService, type Service, type Teardown } from './helpers/service.ts'
import { committed } from './helpers/sockets.ts'
import { track, upgradeByHand, wsUrl, type TrackedSocket } from './helpers/websocket.ts'
import { HEARTBEAT_MS } from '../src/chargers/websockets.ts'

// Wallbox chargers and their widgets end to end: real HTTP, real `ws` WebSockets on an ephemeral
// port, a real mqtt.js client on the embedded broker, and the service's ManualClock in the
// test's hands (the reading rate is a matter of time). No sleeps: every wait is on a committed
// event or on a socket's own 'open', 'message' or 'close'.

const clockOf = (service: Service) => service.clock as ManualClock
const streamOf = (chargerId: string) => `charger-${chargerId}`
const status = (value: 'charging' | 'charging80' | 'charged') => ({ event: 'chargingStatus', data: { status: value } })
const reading = (soc: unknown) => JSON.stringify({ event: 'StateOfCharge', data: { soc } })

let counter = 0

interface Owner { token: string, userId: string, networkId: string }

/** A user with a network, through the public API. */
async function createOwner (service: Service): Promise<Owner> {
  const user = await http(service, 'POST', '/users', { body: { username: `wallbox-${process.pid}-${++counter}`, password: 'correct horse' } })
  if (user.status !== 201) throw new Error(`POST /users: ${user.status}`)
  const token = user.body.access_token as string
  const network = await http(service, 'POST', '/networks', { token, body: { network_name: `garage-${++counter}` } })
  if (network.status !== 201) throw new Error(`POST /networks: ${network.status}`)
  return { token, userId: user.body.user_identifier, networkId: network.body.network_identifier }
}

interface Pair { charger_id: string, widget_id: string, token: string, mqtt: { username: string, password: string } }

async function registerPair (service: Service, owner: Owner, chargerId: string, widgetId: string): Promise<Pair> {
  const created = await http(service, 'POST', '/api/v1/chargers', {
    token: owner.token, body: { charger_id: chargerId, widget_id: widgetId, network_identifier: owner.networkId }
  })
  if (created.status !== 201) throw new Error(`POST /api/v1/chargers: ${created.status} ${JSON.stringify(created.body)}`)
  return created.body
}

type Client = TrackedSocket

function openClient (t: Teardown, service: Service, path: string): Client {
  const ws = new WebSocket(wsUrl(service, path))
  ws.on('error', () => undefined)
  t.teardown(() => { if (ws.readyState !== ws.CLOSED) ws.terminate() })
  return track(ws)
}

/** Resolves once the socket is open; fails if it is closed or refused first. */
function opened (client: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    if (client.ws.readyState === client.ws.OPEN) return resolve()
    client.ws.once('open', () => resolve())
    client.ws.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)))
    client.ws.once('close', code => reject(new Error(`closed (${code}) before it opened`)))
  })
}

/** The WebSocket a socket was turned away with: it opens, then the service closes it with a code and a reason. */
async function turnedAway (t: Teardown, service: Service, path: string): Promise<{ code: number, reason: string, opened: boolean }> {
  const client = openClient(t, service, path)
  let wasOpen = false
  client.ws.once('open', () => { wasOpen = true })
  const closed = await client.closed
  return { ...closed, opened: wasOpen }
}

const chargerPath = (pair: Pair, token: string | null = pair.token, id = pair.charger_id) =>
  `/chargers/${id}${token === null ? '' : `?token=${encodeURIComponent(token)}`}`
const widgetPath = (pair: Pair, token: string | null = pair.token, id = pair.widget_id) =>
  `/widgets/${id}${token === null ? '' : `?token=${encodeURIComponent(token)}`}`

/** A charger's WebSocket, open, and its DeviceConnected committed. */
async function connectCharger (t: Teardown, service: Service, pair: Pair, token = pair.token): Promise<Client & { connected: RecordedEvent & { data: any } }> {
  const connectedEvent = committed(service, e => e.type === 'DeviceConnected' && e.stream_id === streamOf(pair.charger_id))
  const client = openClient(t, service, chargerPath(pair, token))
  await opened(client)
  return Object.assign(client, { connected: await connectedEvent as RecordedEvent & { data: any } })
}

async function connectWidget (t: Teardown, service: Service, pair: Pair): Promise<Client> {
  const client = openClient(t, service, widgetPath(pair))
  await opened(client)
  return client
}

/** Sends a text frame and resolves with what the log recorded for it: the reading, or its rejection. */
async function send (service: Service, client: Client, chargerId: string, text: string): Promise<RecordedEvent> {
  const recorded = committed(service, e => e.stream_id === streamOf(chargerId) && (e.type === 'StateOfChargeReported' || e.type === 'MessageRejected'))
  client.ws.send(text)
  return recorded
}

/** A reading that must be accepted. */
async function accepted (t: Test, service: Service, client: Client, chargerId: string, soc: number): Promise<RecordedEvent> {
  const event = await send(service, client, chargerId, reading(soc))
  t.match(event, { type: 'StateOfChargeReported', data: { charger_id: chargerId, soc, via: 'websocket' } }, `soc ${soc} accepted`)
  return event
}

/** The charger stream's events (of a type); data loosely typed, for assertions. */
const eventsOf = (service: Service, chargerId: string, type?: string) =>
  service.app.store.read({ stream: streamOf(chargerId), ...(type === undefined ? {} : { type }) }) as Array<RecordedEvent & { data: any }>

t.test('the reference\'s end-to-end cases', async t => {
  const service = await startService(t)
  const owner = await createOwner(service)
  const pair = await registerPair(service, owner, 'c1234', 'wABCD')
  const other = await registerPair(service, owner, 'c5678', 'wEFGH')

  t.test('an unknown charger is closed with 4404 and a reason', async t => {
    const refused = await turnedAway(t, service, `/chargers/nope?token=${encodeURIComponent(pair.token)}`)
    t.equal(refused.code, 4404)
    t.ok(refused.reason.length > 0, `a reason: ${refused.reason}`)
    t.match(refused.reason, /unknown charger/)
    t.same(eventsOf(service, 'nope'), [], 'nothing recorded for an unknown charger')
  })

  t.test('a missing or wrong token is closed with 4401 and a reason', async t => {
    for (const [what, path] of [
      ['no token', chargerPath(pair, null)],
      ['a wrong token', chargerPath(pair, 'not-the-token')],
      ['an empty token', chargerPath(pair, '')],
      ["another pair's token", chargerPath(pair, other.token)]
    ] as const) {
      const refused = await turnedAway(t, service, path)
      t.equal(refused.code, 4401, what)
      t.ok(refused.reason.length > 0, `${what}: a reason (${refused.reason})`)
    }
    t.same(eventsOf(service, pair.charger_id, 'DeviceConnected'), [], 'a refused charger is not connected')
  })

  t.test('a known charger is accepted: open, and its DeviceConnected committed', async t => {
    const charger = await connectCharger(t, service, pair)
    t.equal(charger.ws.readyState, WebSocket.OPEN)
    t.match(charger.connected, { type: 'DeviceConnected', stream_id: 'charger-c1234', data: { client_id: /^ws:/ } })
    const closed = committed(service, e => e.type === 'DeviceDisconnected' && e.stream_id === 'charger-c1234')
    charger.ws.close()
    await closed
  })

  t.test('the charger sends soc 100: its widget receives charged', async t => {
    const widget = await connectWidget(t, service, pair)
    const bystander = await connectWidget(t, service, other)
    const charger = await connectCharger(t, service, pair)
    const event = await send(service, charger, 'c1234', '{"event":"StateOfCharge","data":{"soc":100}}')
    t.match(event, { type: 'StateOfChargeReported', data: { charger_id: 'c1234', soc: 100, via: 'websocket' } })
    t.strictSame(await widget.next(), { event: 'chargingStatus', data: { status: 'charged' } })
    t.strictSame(charger.messages, [], 'an accepted reading gets no answer')

    // The other pair's widget got nothing: its first message is its own charger's status.
    const otherCharger = await connectCharger(t, service, other)
    await accepted(t, service, otherCharger, 'c5678', 10)
    t.strictSame(await bystander.next(), status('charging'))
    t.strictSame(bystander.messages, [status('charging')])
  })
})

t.test('a widget: the current status on connect, then only changes', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const owner = await createOwner(service)
  const pair = await registerPair(service, owner, 'c1', 'w1')
  const other = await registerPair(service, owner, 'c2', 'w2')

  const widget = await connectWidget(t, service, pair)
  const bystander = await connectWidget(t, service, other)
  const charger = await connectCharger(t, service, pair)

  // No status yet, so nothing on connect: the first message is the first reading's status.
  await accepted(t, service, charger, 'c1', 50)
  t.strictSame(await widget.next(), status('charging'), 'the first status is the first message')

  clock.advance(1000)
  await accepted(t, service, charger, 'c1', 60)
  t.same(eventsOf(service, 'c1', 'ChargingStatusChanged').map(e => e.data), [{ charger_id: 'c1', widget_id: 'w1', status: 'charging' }],
    'soc 60 changed nothing')

  clock.advance(1000)
  await accepted(t, service, charger, 'c1', 85)
  // Had soc 60 sent "charging" again, it would come before this.
  t.strictSame(await widget.next(), status('charging80'), 'soc 85: charging80, the next message')
  t.strictSame(widget.messages, [status('charging'), status('charging80')], 'soc 60 sent nothing')

  t.test('a widget connecting later gets the current status at once', async t => {
    const late = await connectWidget(t, service, pair)
    t.strictSame(await late.next(), status('charging80'))
    clock.advance(1000)
    await accepted(t, service, charger, 'c1', 90)
    clock.advance(1000)
    await accepted(t, service, charger, 'c1', 100)
    t.strictSame(await late.next(), status('charged'), 'then only the change')
    t.strictSame(await widget.next(), status('charged'), 'every widget of the pair gets it')
    t.strictSame(late.messages, [status('charging80'), status('charged')])
    t.strictSame(widget.messages, [status('charging'), status('charging80'), status('charged')])
  })

  t.test('the widget of another pair gets nothing', async t => {
    const otherCharger = await connectCharger(t, service, other)
    await accepted(t, service, otherCharger, 'c2', 20)
    t.strictSame(await bystander.next(), status('charging'), "its first message is its own charger's")
    t.strictSame(bystander.messages, [status('charging')])
  })

  t.test('an unknown widget is closed with 4404; a bad token with 4401', async t => {
    for (const [what, path, code] of [
      ['an unknown widget', widgetPath(pair, pair.token, 'nope'), 4404],
      ["the charger's id as a widget", widgetPath(pair, pair.token, 'c1'), 4404],
      ['no token', widgetPath(pair, null), 4401],
      ['a wrong token', widgetPath(pair, 'wrong'), 4401],
      ["another pair's token", widgetPath(pair, other.token), 4401]
    ] as const) {
      const refused = await turnedAway(t, service, path)
      t.equal(refused.code, code, what)
      t.ok(refused.reason.length > 0, `${what}: a reason (${refused.reason})`)
    }
    t.match((await turnedAway(t, service, widgetPath(pair, pair.token, 'nope'))).reason, /unknown widget/)
  })
})

t.test('the reading rate: the excess is rejected and recorded', async t => {
  t.test('CHARGER_MAX_RATE 1 by default: one reading a second', async t => {
    const service = await startService(t)
    const clock = clockOf(service)
    const owner = await createOwner(service)
    const pair = await registerPair(service, owner, 'c1', 'w1')
    const widget = await connectWidget(t, service, pair)
    const charger = await connectCharger(t, service, pair)

    await accepted(t, service, charger, 'c1', 50)
    const rejected = await send(service, charger, 'c1', reading(90))
    t.match(rejected, {
      type: 'MessageRejected',
      stream_id: 'charger-c1',
      data: { reason: 'rate_exceeded', username: 'c1', topic: '/chargers/c1', client_id: charger.connected.data.client_id, payload_excerpt: /90/ }
    }, 'the second reading in the same second is recorded as a rejection')
    t.match(await charger.next(), { event: 'error', data: { reason: 'rate_exceeded', message: /1000 ms/ } }, 'and the charger is told')

    clock.advance(999)
    t.match(await send(service, charger, 'c1', reading(95)), { type: 'MessageRejected', data: { reason: 'rate_exceeded' } }, '999 ms later: still too soon')
    t.match(await charger.next(), { event: 'error', data: { reason: 'rate_exceeded' } })

    clock.advance(1)
    await accepted(t, service, charger, 'c1', 60)
    t.equal(charger.ws.readyState, WebSocket.OPEN, 'the charger stays connected')
    t.same(eventsOf(service, 'c1', 'StateOfChargeReported').map(e => e.data.soc), [50, 60], 'every accepted reading is recorded, only those')
    t.same(eventsOf(service, 'c1', 'MessageRejected').map(e => e.data.reason), ['rate_exceeded', 'rate_exceeded'], 'every excess one is recorded as a rejection')

    // The rejected 90 and 95 changed nothing: the widget went from charging straight to charged.
    clock.advance(1000)
    await accepted(t, service, charger, 'c1', 100)
    t.strictSame(await widget.next(), status('charging'))
    t.strictSame(await widget.next(), status('charged'))
    t.strictSame(widget.messages, [status('charging'), status('charged')])
    const list = await http(service, 'GET', '/api/v1/chargers', { token: owner.token })
    t.match(list.body, [{ charger_id: 'c1', soc: 100, charging_status: 'charged' }])
    t.equal(charger.messages.length, 2, 'only the two rejections were answered')
  })

  t.test('CHARGER_MAX_RATE=2: one reading every 500 ms', async t => {
    const service = await startService(t, { env: { CHARGER_MAX_RATE: '2' } })
    const clock = clockOf(service)
    const owner = await createOwner(service)
    const pair = await registerPair(service, owner, 'c1', 'w1')
    const charger = await connectCharger(t, service, pair)

    await accepted(t, service, charger, 'c1', 10)
    clock.advance(499)
    t.match(await send(service, charger, 'c1', reading(20)), { type: 'MessageRejected', data: { reason: 'rate_exceeded', detail: /500 ms/ } }, '499 ms later: rejected')
    t.match(await charger.next(), { event: 'error', data: { reason: 'rate_exceeded' } })
    clock.advance(1)
    await accepted(t, service, charger, 'c1', 30)
    clock.advance(500)
    await accepted(t, service, charger, 'c1', 40)
  })
})

t.test('bad messages: an error on that socket, a rejection recorded, no connection closed', async t => {
  const service = await startService(t)
  const owner = await createOwner(service)
  const pair = await registerPair(service, owner, 'c1', 'w1')
  const other = await registerPair(service, owner, 'c2', 'w2')
  const charger = await connectCharger(t, service, pair)
  const otherCharger = await connectCharger(t, service, other)
  const otherWidget = await connectWidget(t, service, other)
  const widget = await connectWidget(t, service, pair)

  const cases: Array<[string, string, 'invalid_json' | 'invalid_payload']> = [
    ['not JSON', 'soc=50', 'invalid_json'],
    ['truncated JSON', '{"event":"StateOfCharge","data":{"soc":5', 'invalid_json'],
    ['a wrong event name', JSON.stringify({ event: 'ChargingStatus', data: { soc: 50 } }), 'invalid_payload'],
    ['soc 101', reading(101), 'invalid_payload'],
    ['soc -1', reading(-1), 'invalid_payload'],
    ['soc "50"', reading('50'), 'invalid_payload'],
    ['no data', JSON.stringify({ event: 'StateOfCharge' }), 'invalid_payload']
  ]
  for (const [what, text, reason] of cases) {
    const event = await send(service, charger, 'c1', text)
    t.match(event, {
      type: 'MessageRejected',
      stream_id: 'charger-c1',
      data: { reason, topic: '/chargers/c1', username: 'c1', client_id: charger.connected.data.client_id, payload_excerpt: text, payload_bytes: Buffer.byteLength(text) }
    }, `${what}: recorded as ${reason}`)
    t.match(await charger.next(), { event: 'error', data: { reason, message: String } }, `${what}: an error message on the socket`)
    t.equal(charger.ws.readyState, WebSocket.OPEN, `${what}: the socket stays open`)
  }
  t.same(eventsOf(service, 'c1', 'StateOfChargeReported'), [], 'no bad message was taken for a reading')
  t.same(eventsOf(service, 'c1', 'MessageRejected').length, cases.length, 'every one is recorded')

  // The same socket still works, and bad messages did not start the rate window.
  await accepted(t, service, charger, 'c1', 50)
  t.strictSame(await widget.next(), status('charging'))
  t.equal(charger.messages.length, cases.length, 'the valid reading got no error')

  // The other charger's connection was never touched.
  t.equal(otherCharger.ws.readyState, WebSocket.OPEN)
  t.strictSame(otherCharger.messages, [], 'nothing was sent to the other charger')
  await accepted(t, service, otherCharger, 'c2', 90)
  t.strictSame(await otherWidget.next(), status('charging80'))
  t.same(eventsOf(service, 'c2', 'MessageRejected'), [], 'nothing rejected on the other charger')
  t.same(eventsOf(service, 'c1', 'DeviceDisconnected').concat(eventsOf(service, 'c2', 'DeviceDisconnected')), [], 'no charger disconnected')
})

t.test('a charger on MQTT', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const owner = await createOwner(service)
  const pair = await registerPair(service, owner, 'c1', 'w1')
  const other = await registerPair(service, owner, 'c2', 'w2')
  const widget = await connectWidget(t, service, pair)
  const topic = 'chargers/c1/state-of-charge'

  const connected = committed(service, e => e.type === 'DeviceConnected' && e.stream_id === 'charger-c1')
  const client = await connectMqtt(t, service.mqttUrl, { username: pair.mqtt.username, password: pair.mqtt.password })
  t.equal(pair.mqtt.username, 'c1', 'the MQTT username is the charger id')
  t.match(await connected, { data: { client_id: client.options.clientId } }, 'its connection is recorded on the charger stream')

  /** Publish (QoS 1: the PUBACK comes after the commit) and return what was recorded. */
  const publishAndRecord = async (to: string, payload: string | object, stream = 'charger-c1') => {
    const recorded = committed(service, e => e.stream_id === stream && (e.type === 'StateOfChargeReported' || e.type === 'MessageRejected'))
    await publish(client, to, payload)
    return recorded
  }

  t.test('a reading is recorded via mqtt and reaches the widget', async t => {
    t.match(await publishAndRecord(topic, { soc: 90 }), { type: 'StateOfChargeReported', data: { charger_id: 'c1', soc: 90, via: 'mqtt' } })
    t.strictSame(await widget.next(), status('charging80'))
  })

  t.test('bad payloads are rejected and recorded; the client stays connected', async t => {
    for (const [what, payload, reason] of [
      ['not JSON', 'soc=100', 'invalid_json'],
      ['soc 150', '{"soc":150}', 'invalid_payload'],
      ['soc -1', '{"soc":-1}', 'invalid_payload'],
      ['soc as a string', '{"soc":"100"}', 'invalid_payload'],
      ['the WebSocket message', reading(100), 'invalid_payload']
    ] as const) {
      t.match(await publishAndRecord(topic, payload), { type: 'MessageRejected', data: { topic, reason, username: 'c1', payload_excerpt: payload } }, `${what}: ${reason}`)
      t.ok(client.connected, `${what}: still connected`)
    }
    clock.advance(1000)
    t.match(await publishAndRecord(topic, { soc: 100 }), { type: 'StateOfChargeReported', data: { soc: 100, via: 'mqtt' } }, 'a valid reading afterwards works')
    t.strictSame(await widget.next(), status('charged'), 'and reaches the widget: no bad payload did')
  })

  t.test('the MQTT and WebSocket readings share the rate', async t => {
    t.match(await publishAndRecord(topic, { soc: 10 }), { type: 'MessageRejected', data: { reason: 'rate_exceeded', topic } }, 'too soon after the last one')
    t.ok(client.connected)
  })

  t.test("a publish to another charger's topic is foreign_topic", async t => {
    clock.advance(1000)
    t.match(await publishAndRecord('chargers/c2/state-of-charge', { soc: 50 }), {
      type: 'MessageRejected', stream_id: 'charger-c1', data: { reason: 'foreign_topic', topic: 'chargers/c2/state-of-charge' }
    })
    t.ok(client.connected)
    t.same(eventsOf(service, other.charger_id, 'StateOfChargeReported'), [], 'nothing recorded for the other charger')
    t.match(await publishAndRecord('somewhere/else', { soc: 50 }), { type: 'MessageRejected', data: { reason: 'unknown_topic' } })
    t.match(await publishAndRecord(topic, { soc: 40 }), { type: 'StateOfChargeReported', data: { soc: 40 } }, 'and its own topic still works')
  })

  t.test('a wrong password or unknown charger: the CONNECT is refused', async t => {
    for (const [what, username, password] of [
      ['a wrong password', 'c1', 'wrong'],
      ['an unknown charger', 'nope', pair.mqtt.password]
    ] as const) {
      const refusal = committed(service, e => e.type === 'ConnectionRefused')
      await t.rejects(connectMqtt(t, service.mqttUrl, { username, password }), { code: 4 }, `${what}: refused (bad username or password)`)
      t.match(await refusal, { data: { username, reason: 'bad_credentials' } }, `${what}: recorded`)
    }
    // More guesses for c1 from the same address are refused alike, and counted rather than recorded one by one.
    for (const [what, password] of [['the WebSocket token as password', pair.token], ["another charger's password", other.mqtt.password]] as const) {
      await t.rejects(connectMqtt(t, service.mqttUrl, { username: 'c1', password }), { code: 4 }, `${what}: refused (bad username or password)`)
    }
    const summary = committed(service, e => e.type === 'RefusalsSummarized')
    clock.advance(60_000)
    t.match(await summary, { stream_id: 'charger-c1', data: { refusal: 'ConnectionRefused', username: 'c1', reason: 'bad_credentials', count: 2 } }, 'counted into the minute\'s summary')
    t.ok(client.connected, 'the connected charger is unaffected')
  })
})

t.test('pairs: register, list, remove', async t => {
  const service = await startService(t)
  const owner = await createOwner(service)
  const stranger = await createOwner(service)

  t.test('POST registers a pair and gives its token and MQTT credentials once', async t => {
    const created = await http(service, 'POST', '/api/v1/chargers', {
      token: owner.token, body: { charger_id: 'c1234', widget_id: 'wABCD', network_identifier: owner.networkId }
    })
    t.equal(created.status, 201)
    t.match(created.body, { charger_id: 'c1234', widget_id: 'wABCD', token: String, mqtt: { username: 'c1234', password: String } })
    t.strictSame(Object.keys(created.body).sort(), ['charger_id', 'mqtt', 'token', 'widget_id'])
    t.ok(created.body.token.length >= 16, 'a real token')
    t.not(created.body.token, created.body.mqtt.password, 'the MQTT password is not the WebSocket token')
    t.match(eventsOf(service, 'c1234', 'ChargerRegistered'), [{ data: { charger_id: 'c1234', widget_id: 'wABCD', network_identifier: owner.networkId } }])
    t.notMatch(JSON.stringify(eventsOf(service, 'c1234')), created.body.token, 'the token itself is not in the log')
  })

  t.test('refusals', async t => {
    const post = (body: object, token: string | null = owner.token) =>
      http(service, 'POST', '/api/v1/chargers', { ...(token === null ? {} : { token }), body })
    const pairBody = (charger_id: string, widget_id: string, network_identifier = owner.networkId) => ({ charger_id, widget_id, network_identifier })
    t.equal((await post(pairBody('c1234', 'wOTHER'))).status, 409, 'a charger id registered already')
    t.equal((await post(pairBody('cNEW', 'wABCD'))).status, 409, 'a widget id used already')
    t.equal((await post(pairBody('wABCD', 'wNEW'))).status, 409, "another pair's widget id as charger id")
    t.equal((await post(pairBody('cNEW', 'c1234'))).status, 409, "another pair's charger id as widget id")
    t.equal((await post(pairBody('same', 'same'))).status, 409, 'the charger and widget ids the same')
    const sensor = await createSensor(service, { token: owner.token, networkId: owner.networkId })
    t.equal((await post(pairBody(sensor.sensorId, 'wSENSOR'))).status, 409, "a device's MQTT username as charger id")
    t.equal((await post(pairBody('c1234', 'wOTHER', stranger.networkId), stranger.token)).status, 409, 'a charger id another user registered')
    t.equal((await post(pairBody('cOTHER', 'wABCD', stranger.networkId), stranger.token)).status, 409, 'a widget id another user registered')

    for (const [what, body] of [
      ['a space', pairBody('a b', 'wX')],
      ['an empty id', pairBody('', 'wX')],
      ['a slash', pairBody('c/1', 'wX')],
      ['an MQTT wildcard', pairBody('c#', 'wX')],
      ['65 characters', pairBody('c'.repeat(65), 'wX')],
      ['a bad widget id', pairBody('cX', 'w X')],
      ['an empty widget id', pairBody('cX', '')],
      ['no widget id', { charger_id: 'cX', network_identifier: owner.networkId }],
      ['a number', pairBody(1234 as unknown as string, 'wX')]
    ] as const) {
      t.equal((await post(body)).status, 400, what)
    }

    t.equal((await post(pairBody('cX', 'wX'), null)).status, 401, 'no token')
    t.equal((await post(pairBody('cX', 'wX'), 'not-a-token')).status, 401, 'a wrong token')
    t.equal((await post(pairBody('cX', 'wX', stranger.networkId))).status, 404, "another user's network")
    t.equal((await post(pairBody('cX', 'wX', '00000000-0000-4000-8000-000000000000'))).status, 404, 'an unknown network')
    t.equal((await post(pairBody('cX', 'wX', 'not-a-uuid'))).status, 404, 'not a network')
    t.same(eventsOf(service, 'cX'), [], 'nothing registered by a refusal')
    t.same(service.app.store.db.prepare('SELECT charger_id FROM chargers ORDER BY charger_id').pluck().all(), ['c1234'])
  })

  t.test("GET lists only the caller's pairs, with their status and soc", async t => {
    const clock = clockOf(service)
    await registerPair(service, owner, 'c5678', 'wEFGH')
    const theirPair = await registerPair(service, stranger, 'cS', 'wS')
    t.equal((await http(service, 'GET', '/api/v1/chargers')).status, 401, 'no token')
    const before = await http(service, 'GET', '/api/v1/chargers', { token: owner.token })
    t.equal(before.status, 200)
    t.strictSame(before.body, [
      { charger_id: 'c1234', widget_id: 'wABCD', network_identifier: owner.networkId, charging_status: null, soc: null },
      { charger_id: 'c5678', widget_id: 'wEFGH', network_identifier: owner.networkId, charging_status: null, soc: null }
    ])
    const theirs = await http(service, 'GET', '/api/v1/chargers', { token: stranger.token })
    t.strictSame(theirs.body, [{ charger_id: 'cS', widget_id: 'wS', network_identifier: stranger.networkId, charging_status: null, soc: null }])

    const charger = await connectCharger(t, service, theirPair)
    await accepted(t, service, charger, 'cS', 85.5)
    clock.advance(1000)
    const after = await http(service, 'GET', '/api/v1/chargers', { token: stranger.token })
    t.strictSame(after.body, [{ charger_id: 'cS', widget_id: 'wS', network_identifier: stranger.networkId, charging_status: 'charging80', soc: 85.5 }])
    t.match((await http(service, 'GET', '/api/v1/chargers', { token: owner.token })).body, [{ soc: null }, { soc: null }], "the owner's are unchanged")
  })

  t.test('DELETE removes the pair: its sockets are closed, it is gone, its id is free', async t => {
    const pair = await registerPair(service, owner, 'cDEL', 'wDEL')
    const charger = await connectCharger(t, service, pair)
    await accepted(t, service, charger, 'cDEL', 100)
    const widget = await connectWidget(t, service, pair)
    t.strictSame(await widget.next(), status('charged'))

    t.equal((await http(service, 'DELETE', '/api/v1/chargers/cDEL')).status, 401, 'no token')
    t.equal((await http(service, 'DELETE', '/api/v1/chargers/cDEL', { token: stranger.token })).status, 404, "another user's pair")
    t.equal((await http(service, 'DELETE', '/api/v1/chargers/nope', { token: owner.token })).status, 404, 'an unknown pair')
    t.equal((await http(service, 'DELETE', '/api/v1/chargers/wDEL', { token: owner.token })).status, 404, 'a widget id is not a charger')
    t.equal(charger.ws.readyState, WebSocket.OPEN, 'the refused deletes closed nothing')

    const disconnected = committed(service, e => e.type === 'DeviceDisconnected' && e.stream_id === 'charger-cDEL')
    const removed = await http(service, 'DELETE', '/api/v1/chargers/cDEL', { token: owner.token })
    t.equal(removed.status, 204)
    t.equal(removed.body, undefined, 'no body')
    t.match(eventsOf(service, 'cDEL', 'ChargerRemoved'), [{ data: { charger_id: 'cDEL', widget_id: 'wDEL' } }])

    t.match(await charger.closed, { code: 4404, reason: /removed/ }, "the charger's socket is closed with 4404")
    t.match(await widget.closed, { code: 4404, reason: /removed/ }, "the widget's socket is closed with 4404")
    await disconnected

    const list = await http(service, 'GET', '/api/v1/chargers', { token: owner.token })
    t.notOk(list.body.some((p: { charger_id: string }) => p.charger_id === 'cDEL'), 'GET omits it')
    t.equal((await http(service, 'GET', '/api/v1/devices/cDEL', { token: owner.token })).status, 404, 'no longer a device')
    t.equal((await http(service, 'DELETE', '/api/v1/chargers/cDEL', { token: owner.token })).status, 404, 'a second DELETE: 404')

    t.equal((await turnedAway(t, service, chargerPath(pair))).code, 4404, 'the charger cannot reconnect')
    t.equal((await turnedAway(t, service, widgetPath(pair))).code, 4404, 'nor its widget')
    await t.rejects(connectMqtt(t, service.mqttUrl, { username: 'cDEL', password: pair.mqtt.password }), { code: 4 }, 'nor by MQTT')

    const again = await registerPair(service, owner, 'cDEL', 'wDEL2')
    t.not(again.token, pair.token, 'a new token')
    t.equal((await turnedAway(t, service, chargerPath(pair))).code, 4401, 'the old token no longer works')
    const reconnected = await connectCharger(t, service, again)
    t.equal(reconnected.ws.readyState, WebSocket.OPEN, 'the new token works')
    t.equal((await turnedAway(t, service, widgetPath(pair))).code, 4404, 'the old widget id is gone')
    t.match((await http(service, 'GET', '/api/v1/chargers', { token: owner.token })).body,
      [{ charger_id: 'c1234' }, { charger_id: 'c5678' }, { charger_id: 'cDEL', widget_id: 'wDEL2', charging_status: null, soc: null }],
      'registered again, with no status')
    const newWidget = await connectWidget(t, service, again)
    clockOf(service).advance(1000)
    await accepted(t, service, reconnected, 'cDEL', 30)
    t.strictSame(await newWidget.next(), status('charging'), 'the new widget starts afresh: no status on connect, then the reading')
  })
})

t.test("presence: a charger's WebSocket connect and close", async t => {
  const service = await startService(t)
  const owner = await createOwner(service)
  const pair = await registerPair(service, owner, 'c1', 'w1')
  const device = () => http(service, 'GET', '/api/v1/devices/c1', { token: owner.token })

  const offline = await device()
  t.equal(offline.status, 200)
  t.match(offline.body, { id: 'c1', kind: 'charger', network_identifier: owner.networkId, online: false, connected_since: null })

  const charger = await connectCharger(t, service, pair)
  t.match(charger.connected, { type: 'DeviceConnected', stream_id: 'charger-c1' })
  const online = await device()
  t.match(online.body, { id: 'c1', kind: 'charger', online: true, connected_since: charger.connected.recorded_at })
  t.match((await http(service, 'GET', `/api/v1/devices?network=${owner.networkId}`, { token: owner.token })).body, [{ id: 'c1', online: true }])

  const disconnected = committed(service, e => e.type === 'DeviceDisconnected' && e.stream_id === 'charger-c1')
  charger.ws.close(1000)
  const event = await disconnected
  t.match(event, { data: { client_id: charger.connected.data.client_id, reason: 'closed' } }, 'the same connection')
  const after = await device()
  t.match(after.body, { id: 'c1', online: false, connected_since: null })
  t.not(after.body.last_seen, null)

  // Reconnect: online again.
  const again = await connectCharger(t, service, pair)
  t.not(again.connected.data.client_id, charger.connected.data.client_id, 'a new connection')
  t.match((await device()).body, { online: true })
  t.equal((await http(service, 'GET', '/api/v1/devices/c1', { token: (await createOwner(service)).token })).status, 404, "not another user's device")
})

t.test('npm run seed:demo creates the reference\'s pairs, once', async t => {
  const service = await startService(t, { clock: systemClock })
  const rows = () => service.app.store.db.prepare('SELECT charger_id, widget_id FROM chargers ORDER BY charger_id').all()
  t.same(rows(), [], 'start-up creates no charger')
  t.same(service.app.store.read({ type: 'ChargerRegistered' }), [])

  const seed = () => new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/seed-demo.ts', '--url', service.url], { cwd: root, env: cleanEnv({}) })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', chunk => { stdout += chunk })
    child.stderr.on('data', chunk => { stderr += chunk })
    child.once('error', reject)
    child.once('close', code => resolve({ code, stdout, stderr }))
  })

  const first = await seed()
  t.equal(first.code, 0, first.stderr)
  const output = JSON.parse(first.stdout)
  t.match(output, {
    user: 'demo',
    access_token: String,
    network_identifier: String,
    pairs: [
      { charger_id: 'c1234', widget_id: 'wABCD', token: String, mqtt: { username: 'c1234', password: String } },
      { charger_id: 'c5678', widget_id: 'wEFGH', token: String, mqtt: { username: 'c5678', password: String } }
    ]
  })
  t.equal(output.pairs.length, 2)
  t.same(rows(), [{ charger_id: 'c1234', widget_id: 'wABCD' }, { charger_id: 'c5678', widget_id: 'wEFGH' }])
  const listed = await http(service, 'GET', '/api/v1/chargers', { token: output.access_token })
  t.match(listed.body, [{ charger_id: 'c1234', network_identifier: output.network_identifier }, { charger_id: 'c5678' }])

  // The printed tokens are the pairs' own: a charger and its widget get in with them.
  const [c1234] = output.pairs as Pair[]
  const widget = await connectWidget(t, service, c1234!)
  const charger = await connectCharger(t, service, c1234!)
  await accepted(t, service, charger, 'c1234', 100)
  t.strictSame(await widget.next(), status('charged'))

  const second = await seed()
  t.equal(second.code, 0, 'a second run succeeds')
  t.match(second.stderr, /c1234 exists already/)
  t.match(second.stderr, /c5678 exists already/)
  t.match(JSON.parse(second.stdout), { network_identifier: output.network_identifier, pairs: [] }, 'the same network, nothing new')
  t.same(rows(), [{ charger_id: 'c1234', widget_id: 'wABCD' }, { charger_id: 'c5678', widget_id: 'wEFGH' }], 'the pairs are left as they are')
  t.equal(service.app.store.read({ type: 'ChargerRegistered' }).length, 2)
})

t.test("a charger id cannot take another device's identifier, and removing a pair ends its MQTT sessions", async t => {
  const service = await startService(t)
  const owner = await createOwner(service)
  const intruder = await createOwner(service)
  const sensor = await createSensor(service, { token: owner.token, networkId: owner.networkId })
  const taken = await http(service, 'POST', '/api/v1/chargers', {
    token: intruder.token, body: { charger_id: sensor.sensorId, widget_id: 'w-intruder', network_identifier: intruder.networkId }
  })
  t.equal(taken.status, 409, "a sensor's identifier is taken")
  const device = await http(service, 'GET', `/api/v1/devices/${sensor.sensorId}`, { token: owner.token })
  t.match(device.body, { kind: 'sensor', network_identifier: owner.networkId }, 'the sensor stays where it was')

  const pair = await registerPair(service, owner, 'c-mqtt', 'w-mqtt')
  const charger = await connectMqtt(t, service.mqttUrl, { username: pair.mqtt.username, password: pair.mqtt.password })
  const closed = new Promise<void>(resolve => charger.once('close', () => resolve()))
  const ended = committed(service, e => e.stream_id === streamOf('c-mqtt') && e.type === 'DeviceDisconnected')
  t.equal((await http(service, 'DELETE', '/api/v1/chargers/c-mqtt', { token: owner.token })).status, 204)
  await closed
  await ended
  t.pass('the MQTT session of the removed pair was closed and its end recorded')
  await t.rejects(connectMqtt(t, service.mqttUrl, { username: pair.mqtt.username, password: pair.mqtt.password }),
    /Bad username or password|Not authorized/, "the removed charger's credentials no longer connect")

  const again = await registerPair(service, owner, 'c-mqtt', 'w-mqtt2')
  await t.rejects(connectMqtt(t, service.mqttUrl, { username: pair.mqtt.username, password: pair.mqtt.password }),
    /Bad username or password|Not authorized/, 'registered again, the id has a new password: the old one is refused')
  const renewed = await connectMqtt(t, service.mqttUrl, { username: again.mqtt.username, password: again.mqtt.password })
  t.ok(renewed.connected, 'and the new one connects')
  renewed.end(true)
  const widget = openClient(t, service, `/widgets/w-mqtt2?token=${again.token}`)
  await new Promise(resolve => widget.ws.once('open', resolve))
  const fresh = openClient(t, service, `/chargers/c-mqtt?token=${again.token}`)
  await new Promise(resolve => fresh.ws.once('open', resolve))
  fresh.ws.send(Buffer.from(reading(100)), { binary: true })
  t.same(await widget.next(), status('charged'), 'a reading sent as a binary frame is read as JSON too')
})

t.test('a charger that stops answering pings is cut off and recorded as disconnected; one that answers stays', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const owner = await createOwner(service)
  const pair = await registerPair(service, owner, 'c-heart', 'w-heart')
  const healthy = await registerPair(service, owner, 'c-alive', 'w-alive')

  const alive = openClient(t, service, `/chargers/c-alive?token=${healthy.token}`)
  const aliveConnected = committed(service, e => e.stream_id === streamOf('c-alive') && e.type === 'DeviceConnected')
  await new Promise(resolve => alive.ws.once('open', resolve))
  await aliveConnected

  // A charger that vanished: its TCP connection is open, but nothing answers (no pong, ever).
  const connected = committed(service, e => e.stream_id === streamOf('c-heart') && e.type === 'DeviceConnected')
  const silent = await upgradeByHand(t, service.url, `/chargers/c-heart?token=${pair.token}`)
  silent.on('data', () => undefined)
  await connected

  const pinged = new Promise(resolve => alive.ws.once('ping', resolve))
  clock.advance(HEARTBEAT_MS)
  await pinged
  // The reply comes back after the pong the client sent on its own, in order on one connection.
  alive.ws.send('not json')
  t.equal((await alive.next()).event, 'error', 'the healthy charger answered in time')

  const cutOff = committed(service, e => e.stream_id === streamOf('c-heart') && e.type === 'DeviceDisconnected')
  clock.advance(HEARTBEAT_MS)
  t.match((await cutOff).data, { reason: 'keepalive_timeout', detail: /no answer to a ping/ }, 'the silent charger is recorded as timed out')
  t.equal((await http(service, 'GET', '/api/v1/devices/c-heart', { token: owner.token })).body.online, false)
  t.equal(alive.ws.readyState, alive.ws.OPEN, 'the healthy one is still connected')
  t.equal((await http(service, 'GET', '/api/v1/devices/c-alive', { token: owner.token })).body.online, true)
})

t.test('a stop records the end of every charger WebSocket before the log closes; the next start finds none open', async t => {
  const first = await startService(t)
  const owner = await createOwner(first)
  const pair = await registerPair(first, owner, 'c1', 'w1')
  const charger = await connectCharger(t, first, pair)
  const widget = await connectWidget(t, first, pair)
  const closed = new Promise<number>(resolve => charger.ws.once('close', code => resolve(code)))
  await first.close()
  t.ok((await closed) >= 1000, 'the charger socket is closed')
  t.equal(widget.ws.readyState === WebSocket.CLOSED || widget.ws.readyState === WebSocket.CLOSING, true, 'the widget too')

  const second = await startService(t, { dir: first.dir })
  const ends = eventsOf(second, 'c1', 'DeviceDisconnected')
  t.equal(ends.length, 1, 'one end, recorded at the stop, none added at the next start')
  t.match(ends[0]!.data, { client_id: (charger.connected.data as any).client_id, reason: 'service_stopped', detail: 'the service stopped and closed the connection' })
  const device = await http(second, 'GET', '/api/v1/devices/c1', { token: owner.token })
  t.match(device.body, { id: 'c1', online: false, connected_since: null })
})

t.test('the refusal policy holds on the WebSocket too: a refusal keeps the connection, too many in a minute cut it off, recorded once', async t => {
  const service = await startService(t, { env: { MQTT_MAX_REFUSALS_PER_MINUTE: '3' } })
  const owner = await createOwner(service)
  const pair = await registerPair(service, owner, 'c1', 'w1')
  const charger = await connectCharger(t, service, pair)
  const closed = new Promise<{ code: number, reason: string }>(resolve => charger.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))

  t.match(await send(service, charger, 'c1', 'not json'), { type: 'MessageRejected', data: { reason: 'invalid_json' } }, 'refusal 1')
  t.match(await send(service, charger, 'c1', reading(101)), { type: 'MessageRejected', data: { reason: 'invalid_payload' } }, 'refusal 2')
  await accepted(t, service, charger, 'c1', 50)
  t.match(await send(service, charger, 'c1', reading(51)), { type: 'MessageRejected', data: { reason: 'rate_exceeded' } }, 'refusal 3: the rate counts as a refusal')
  t.equal(charger.ws.readyState, WebSocket.OPEN, 'three refusals within the minute: still connected')

  const cutOff = committed(service, e => e.type === 'DeviceDisconnected' && e.stream_id === streamOf('c1'))
  t.match(await send(service, charger, 'c1', '{}'), { type: 'MessageRejected', data: { reason: 'invalid_payload' } }, 'the one too many is recorded too')
  t.match((await cutOff).data, { client_id: charger.connected.data.client_id, reason: 'too_many_refusals', detail: 'more than 3 refusals in a minute' })
  t.strictSame(await closed, { code: 1008, reason: 'too many refused messages' })
  await service.app.store.transact(() => undefined)
  t.equal(eventsOf(service, 'c1', 'DeviceDisconnected').length, 1, 'one disconnect: the close itself adds none')
})

t.test('a charger flooding bad messages on its WebSocket adds a bounded number of events: identical ones are counted, distinct ones recorded up to a budget', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { MQTT_MAX_REFUSALS_PER_MINUTE: '100000' } })
  const owner = await createOwner(service)
  const pair = await registerPair(service, owner, 'c1', 'w1')
  const charger = await connectCharger(t, service, pair)
  /** The next `count` messages on the socket, in order. */
  const errors = async (count: number) => {
    const messages = []
    for (let i = 0; i < count; i++) messages.push(await charger.next())
    return messages
  }

  // 200 identical bad messages, then 50 distinct ones (each a different soc out of range).
  let answered = errors(200)
  for (let i = 0; i < 200; i++) charger.ws.send('not json')
  t.ok((await answered).every(m => m.event === 'error' && m.data.reason === 'invalid_json'), 'each identical one is told')
  answered = errors(50)
  for (let i = 0; i < 50; i++) charger.ws.send(reading(101 + i))
  t.ok((await answered).every(m => m.event === 'error' && m.data.reason === 'invalid_payload'), 'each distinct one is told')
  const reported = committed(service, e => e.type === 'StateOfChargeReported')
  charger.ws.send(reading(50))
  t.match(await reported, { data: { charger_id: 'c1', soc: 50 } }, 'a good reading among them is recorded')
  // Past CHARGER_MAX_RATE, the same reading again and again: decided in the unit, counted like the rest.
  answered = errors(20)
  for (let i = 0; i < 20; i++) charger.ws.send(reading(60))
  t.ok((await answered).every(m => m.event === 'error' && m.data.reason === 'rate_exceeded'), 'each reading too soon is told')
  t.equal(charger.ws.readyState, WebSocket.OPEN, 'never cut off (the limit is raised for this test)')

  const summarized = committed(service, e => e.type === 'RefusalsSummarized')
  clock.advance(60_000)
  await summarized
  await service.app.store.transact(() => undefined)
  const rejected = eventsOf(service, 'c1', 'MessageRejected')
  const summaries = eventsOf(service, 'c1', 'RefusalsSummarized').map(e => e.data)
  t.equal(rejected.length, FULL_RECORDS_PER_WINDOW, `${rejected.length} rejections recorded in full: the budget`)
  t.match(summaries.find(s => s.reason === 'invalid_json'), { refusal: 'MessageRejected', count: 199, topics: ['/chargers/c1'] }, 'the 199 identical ones: one summary')
  t.equal(rejected.length + summaries.reduce((n, s) => n + s.count, 0), 270, 'every refusal is recorded or counted')
  t.equal(eventsOf(service, 'c1', 'StateOfChargeReported').length, 1, 'the good reading is recorded')
})
