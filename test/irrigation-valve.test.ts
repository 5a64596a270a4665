import { randomUUID } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import { ManualClock } from '../src/clock.ts'
import { localIso } from '../src/irrigation/views.ts'
import { connectMqtt, http, publish, startService, type Service, type Teardown } from './helpers/service.ts'
import { committed } from './helpers/sockets.ts'
import { testWithin } from './helpers/within.ts'
import { createZone, type ZoneFixture } from './helpers/zones.ts'

// The valve controller's side of an irrigation zone, end to end: the embedded broker on an
// ephemeral port, real mqtt.js clients as controllers, read back over real HTTP, the service's
// ManualClock in the test's hands.

const test = testWithin(30_000)
const clockOf = (service: Service) => service.clock as ManualClock


const valveTopic = (zone: ZoneFixture) => `zones/${zone.zoneId}/valve`
const stateTopic = (zone: ZoneFixture) => `zones/${zone.zoneId}/state`
const clientId = (prefix: string) => `${prefix}-${process.pid}-${randomUUID().slice(0, 8)}`

/** A valve controller: connected as the zone (waits until the service has recorded it connected). */
async function connectController (t: Teardown, service: Service, zone: ZoneFixture, id = clientId('valve')): Promise<MqttClient> {
  const connected = committed(service, e => e.type === 'DeviceConnected' && e.stream_id === `zone-${zone.zoneId}` && (e.data as any).client_id === id)
  const client = await connectMqtt(t, service.mqttUrl, { username: zone.zoneId, password: zone.password, clientId: id })
  await connected
  return client
}

/** Messages a client receives on its subscriptions, read in order. */
function inbox (client: MqttClient) {
  const messages: Array<{ topic: string, payload: any, retain: boolean }> = []
  let read = 0
  let wake: (() => void) | undefined
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload: JSON.parse(payload.toString()), retain: packet.retain })
    wake?.()
  })
  return {
    messages,
    async next () {
      while (read >= messages.length) {
        await new Promise<void>(resolve => { wake = resolve })
        wake = undefined
      }
      return messages[read++]!
    },
    unread: () => messages.slice(read)
  }
}

const zoneState = async (service: Service, zone: ZoneFixture) => {
  const response = await http(service, 'GET', `/api/v1/zones/${zone.zoneId}`, { token: zone.token })
  if (response.status !== 200) throw new Error(`GET zone: ${response.status}`)
  return response.body
}

/** Events of the zone's stream, through the audit feed. */
async function zoneEvents (service: Service, zone: ZoneFixture, type: string): Promise<any[]> {
  const response = await http(service, 'GET', `/api/v1/events?limit=1000&type=${type}&stream=zone-${zone.zoneId}`, { token: zone.token })
  if (response.status !== 200) throw new Error(`GET /api/v1/events: ${response.status}`)
  return response.body.events
}

const command = (service: Service, zone: ZoneFixture, name: string) =>
  http(service, 'POST', `/api/v1/zones/${zone.zoneId}/${name}`, { token: zone.token })

const WAITING = { open: false, mode: 'wait_mode', since: null, to: null }

test('the controller gets its valve command, retained, on subscribe and on every mode change', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const controller = await connectController(t, service, zone)
  const valve = inbox(controller)
  const granted = await controller.subscribeAsync(valveTopic(zone), { qos: 1 })
  t.equal(granted[0]!.qos, 1, 'its own valve topic is granted')

  t.strictSame(await valve.next(), { topic: valveTopic(zone), payload: WAITING, retain: true }, 'the retained command on subscribe: closed, waiting')

  const started = clock.now()
  t.equal((await command(service, zone, 'timer')).status, 200)
  t.strictSame((await valve.next()).payload, { open: true, mode: 'timer_mode', since: localIso(started), to: localIso(started + 10_000) }, 'open while the timer runs')

  // A command that changes nothing sends nothing: the next message is the timer's end.
  t.equal((await command(service, zone, 'timer')).body.since, localIso(started), 'a timer while a timer runs is ignored')
  const ended = committed(service, e => e.type === 'ZoneRunEnded' && e.stream_id === `zone-${zone.zoneId}`)
  clock.advance(10_000)
  t.equal(((await ended).data as { reason: string }).reason, 'completed')
  t.strictSame((await valve.next()).payload, WAITING, 'closed when the timer completes')

  const manualAt = clock.now()
  await command(service, zone, 'manual')
  t.strictSame((await valve.next()).payload, { open: true, mode: 'manual_mode', since: localIso(manualAt), to: null }, 'open in manual')
  await command(service, zone, 'stop')
  t.strictSame((await valve.next()).payload, WAITING, 'closed on stop')
  t.strictSame(valve.unread(), [], 'one command per change')

  // A controller that (re)connects later gets the latest command at once.
  await command(service, zone, 'manual')
  t.strictSame((await valve.next()).payload.mode, 'manual_mode')
  const late = await connectController(t, service, zone)
  const lateValve = inbox(late)
  await late.subscribeAsync(valveTopic(zone), { qos: 1 })
  t.strictSame(await lateValve.next(), { topic: valveTopic(zone), payload: { open: true, mode: 'manual_mode', since: localIso(manualAt), to: null }, retain: true },
    'a later subscriber gets the current command, retained')
})

test('the retained command is published again after a restart', async t => {
  const first = await startService(t)
  const zone = await createZone(first)
  const at = first.clock.now()
  t.equal((await command(first, zone, 'manual')).body.mode, 'manual_mode')
  await first.close()

  // The broker keeps retained messages in memory only: a fresh broker knows them from the log.
  const second = await startService(t, { dir: first.dir, clock: new ManualClock(at + 60_000) })
  const controller = await connectController(t, second, zone)
  const valve = inbox(controller)
  await controller.subscribeAsync(valveTopic(zone), { qos: 1 })
  t.strictSame(await valve.next(), { topic: valveTopic(zone), payload: { open: true, mode: 'manual_mode', since: localIso(at), to: null }, retain: true },
    'a fresh subscriber gets the current state after the restart')
  await command(second, zone, 'stop')
  t.strictSame((await valve.next()).payload, WAITING, 'and commands go on after it')
})

test('the controller reports the valve: recorded, and shown as valve_open', async t => {
  const service = await startService(t)
  const zone = await createZone(service)
  t.equal((await zoneState(service, zone)).valve_open, null, 'null until the controller reports')
  const id = clientId('reporter')
  const controller = await connectController(t, service, zone, id)

  await publish(controller, stateTopic(zone), { open: true })
  const [reported, ...more] = await zoneEvents(service, zone, 'ValveStateReported')
  t.strictSame(more, [], 'one event')
  t.strictSame(reported.data, { zone_identifier: zone.zoneId, open: true }, 'recorded as ValveStateReported')
  t.equal(reported.metadata.actor, `mqtt:${id}`, 'by the controller')
  t.equal((await zoneState(service, zone)).valve_open, true, 'GET shows valve_open true')

  await publish(controller, stateTopic(zone), { open: false })
  t.equal((await zoneState(service, zone)).valve_open, false, 'and false when it says so')
})

test('a valve that does not follow within 5 s is shown as a mismatch until it agrees', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const controller = await connectController(t, service, zone)

  await command(service, zone, 'manual')
  clock.advance(4999)
  t.equal((await zoneState(service, zone)).valve_mismatch, false, 'no mismatch within the 5 s')
  const mismatch = committed(service, e => e.type === 'ValveMismatchDetected' && e.stream_id === `zone-${zone.zoneId}`)
  clock.advance(1)
  t.strictSame((await mismatch).data, { zone_identifier: zone.zoneId, commanded_open: true, reported_open: null }, 'the controller reported nothing')
  t.equal((await zoneState(service, zone)).valve_mismatch, true, 'GET shows valve_mismatch true')

  await publish(controller, stateTopic(zone), { open: false })
  t.equal((await zoneState(service, zone)).valve_mismatch, true, 'a report that still disagrees keeps it')
  await publish(controller, stateTopic(zone), { open: true })
  const agreed = await zoneState(service, zone)
  t.equal(agreed.valve_mismatch, false, 'cleared once the controller reports open')
  t.equal(agreed.valve_open, true)

  // Stop: closed commanded; a controller that reports closed within the grace never mismatches.
  await command(service, zone, 'stop')
  clock.advance(2000)
  await publish(controller, stateTopic(zone), { open: false })
  clock.advance(10_000)
  // Any check due was queued before this report: once it is acknowledged, the check is committed.
  await publish(controller, stateTopic(zone), { open: false })
  t.equal((await zoneState(service, zone)).valve_mismatch, false, 'no mismatch when it followed in time')
  t.equal((await zoneEvents(service, zone, 'ValveMismatchDetected')).length, 1, 'still only the first mismatch')

  // A report that disagrees during the grace: the mismatch names it.
  await command(service, zone, 'manual')
  await publish(controller, stateTopic(zone), { open: false })
  const second = committed(service, e => e.type === 'ValveMismatchDetected' && e.stream_id === `zone-${zone.zoneId}`)
  clock.advance(5000)
  t.strictSame((await second).data, { zone_identifier: zone.zoneId, commanded_open: true, reported_open: false }, 'it reported closed')
  t.equal((await zoneState(service, zone)).valve_mismatch, true)

  // A new mode change gives the valve a new 5 s: the mismatch clears, and comes back only if it does not follow.
  await command(service, zone, 'stop')
  t.equal((await zoneState(service, zone)).valve_mismatch, false, 'stop: now closed is commanded, and closed was reported')
})

test('a valve that reports open within the 5 s never mismatches', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const controller = await connectController(t, service, zone)

  await command(service, zone, 'timer')
  clock.advance(1000)
  await publish(controller, stateTopic(zone), { open: true })
  clock.advance(5000)
  await publish(controller, stateTopic(zone), { open: true })
  t.equal((await zoneState(service, zone)).valve_mismatch, false)
  t.strictSame(await zoneEvents(service, zone, 'ValveMismatchDetected'), [], 'no ValveMismatchDetected')

  // The timer ends (closed commanded) and the controller does not follow.
  const ended = committed(service, e => e.type === 'ZoneRunEnded' && e.stream_id === `zone-${zone.zoneId}`)
  clock.advance(4000)
  t.equal(((await ended).data as { reason: string }).reason, 'completed', 'the 10 s timer completes')
  const mismatch = committed(service, e => e.type === 'ValveMismatchDetected' && e.stream_id === `zone-${zone.zoneId}`)
  clock.advance(5000)
  t.strictSame((await mismatch).data, { zone_identifier: zone.zoneId, commanded_open: false, reported_open: true }, 'still open 5 s after the timer ended')
})

test('a mismatch check that fell due while the service was down fires after the restart', async t => {
  const first = await startService(t)
  const zone = await createZone(first)
  const changedAt = first.clock.now()
  await command(first, zone, 'manual')
  ;(first.clock as ManualClock).advance(2000)
  await first.close()

  // Back up 1 s before the check is due: it fires at its time.
  const clock = new ManualClock(changedAt + 4000)
  const second = await startService(t, { dir: first.dir, clock })
  t.equal((await zoneState(second, zone)).valve_mismatch, false, 'not yet')
  const mismatch = committed(second, e => e.type === 'ValveMismatchDetected' && e.stream_id === `zone-${zone.zoneId}`)
  clock.advance(1000)
  t.strictSame((await mismatch).data, { zone_identifier: zone.zoneId, commanded_open: true, reported_open: null })
  t.equal((await zoneState(second, zone)).valve_mismatch, true)
  await second.close()

  // The valve catches up with manual, then a stop it does not follow; back up long after that
  // change's check was due: it fires at once.
  const third = await startService(t, { dir: first.dir, clock: new ManualClock(changedAt + 10_000) })
  const controller = await connectController(t, third, zone)
  const agreed = committed(third, e => e.type === 'ValveStateReported' && e.stream_id === `zone-${zone.zoneId}`)
  await controller.publishAsync(stateTopic(zone), JSON.stringify({ open: true }), { qos: 1 })
  await agreed
  t.equal((await zoneState(third, zone)).valve_mismatch, false, 'the valve agrees with manual')
  await command(third, zone, 'stop')
  await controller.endAsync()
  await third.close()
  const fourthClock = new ManualClock(changedAt + 3_600_000)
  const fourth = await startService(t, { dir: first.dir, clock: fourthClock })
  const late = committed(fourth, e => e.type === 'ValveMismatchDetected' && e.stream_id === `zone-${zone.zoneId}`)
  fourthClock.advance(0)
  t.strictSame((await late).data, { zone_identifier: zone.zoneId, commanded_open: false, reported_open: true }, 'the overdue check fires at start')
  t.equal((await zoneState(fourth, zone)).valve_mismatch, true)
})

test('refused messages and subscriptions are recorded, and never cost the controller its connection', async t => {
  const service = await startService(t)
  const zone = await createZone(service)
  const other = await createZone(service, { token: zone.token, networkId: zone.networkId })
  const id = clientId('refused')
  const controller = await connectController(t, service, zone, id)
  let closed = false
  controller.on('close', () => { closed = true })

  const rejected = async (topic: string, payload: string | object, reason: string, options: { retain?: boolean } = {}) => {
    const event = committed(service, e => e.type === 'MessageRejected' && e.stream_id === `zone-${zone.zoneId}`)
    const body = typeof payload === 'string' ? payload : JSON.stringify(payload)
    await controller.publishAsync(topic, body, { qos: 1, retain: options.retain ?? false })
    const { data } = await event
    t.match(data, { topic, client_id: id, username: zone.zoneId, reason }, `${topic} ${body}: ${reason}`)
    t.notOk(closed, 'still connected')
  }

  await rejected(stateTopic(zone), '{"open": tru', 'invalid_json')
  await rejected(stateTopic(zone), { open: 'yes' }, 'invalid_payload')
  await rejected(stateTopic(zone), { closed: true }, 'invalid_payload')
  await rejected(stateTopic(other), { open: true }, 'foreign_topic')
  await rejected(`zones/${other.zoneId}/valve`, { open: true, mode: 'manual_mode', since: null, to: null }, 'foreign_topic')
  await rejected('sprinklers/everything', { open: true }, 'unknown_topic')

  // Not even its own valve topic: a controller cannot command itself, nor replace the retained command.
  await rejected(valveTopic(zone), { open: true, mode: 'manual_mode', since: null, to: null }, 'reserved_topic', { retain: true })
  const check = await connectController(t, service, zone)
  const checkValve = inbox(check)
  await check.subscribeAsync(valveTopic(zone), { qos: 1 })
  t.strictSame((await checkValve.next()).payload, WAITING, 'the retained command is still the service\'s')

  t.strictSame(await zoneEvents(service, zone, 'ValveStateReported'), [], 'nothing refused was recorded as a report')
  t.strictSame(await zoneEvents(service, other, 'ValveStateReported'), [], 'nor on the other zone')
  t.equal((await zoneState(service, other)).valve_open, null, "the other zone's valve is untouched")

  // Subscriptions to anything but its own valve topic: SUBACK 0x80, recorded, connection kept.
  for (const topic of [`zones/${other.zoneId}/valve`, 'zones/+/valve', 'zones/#', stateTopic(zone)]) {
    const refused = committed(service, e => e.type === 'SubscriptionRefused' && e.stream_id === `zone-${zone.zoneId}`)
    // mqtt.js turns a SUBACK failure code into an error that carries the SUBACK packet.
    const granted = await controller.subscribeAsync(topic, { qos: 1 }).then(() => 'granted', (error: any) => error.packet?.granted)
    t.strictSame(granted, [128], `SUBACK refuses ${topic}: granted QoS 128 (0x80)`)
    t.match((await refused).data, { topic, client_id: id, username: zone.zoneId, reason: 'foreign_topic' }, `SubscriptionRefused ${topic}`)
    t.notOk(closed, 'still connected')
  }

  // Still connected, and heard: a valid report goes through.
  t.ok(controller.connected, 'the controller is still connected')
  await publish(controller, stateTopic(zone), { open: true })
  t.equal((await zoneState(service, zone)).valve_open, true, 'a later valid report is recorded')
  t.equal((await zoneEvents(service, zone, 'MessageRejected')).length, 7, 'every refusal recorded on the zone\'s stream')
  t.equal((await zoneEvents(service, zone, 'SubscriptionRefused')).length, 4)
})

test('a wrong password is refused at CONNECT', async t => {
  const service = await startService(t)
  const zone = await createZone(service)
  const other = await createZone(service, { token: zone.token, networkId: zone.networkId })

  const refused = committed(service, e => e.type === 'ConnectionRefused' && e.stream_id === `zone-${zone.zoneId}`)
  await t.rejects(connectMqtt(t, service.mqttUrl, { username: zone.zoneId, password: 'not the password', clientId: clientId('bad') }), 'CONNECT refused')
  t.match((await refused).data, { username: zone.zoneId, reason: 'bad_credentials', detail: 'wrong password' })
  await t.rejects(connectMqtt(t, service.mqttUrl, { username: zone.zoneId, password: other.password }), "another zone's password is refused too")
  t.equal((await zoneState(service, zone)).online, false, 'never online')
})

test('presence: online while the controller is connected', async t => {
  const service = await startService(t)
  const zone = await createZone(service)
  t.equal((await zoneState(service, zone)).online, false, 'offline before it connects')

  const controller = await connectController(t, service, zone)
  t.equal((await zoneState(service, zone)).online, true, 'online while connected')
  const listed = await http(service, 'GET', '/api/v1/zones', { token: zone.token })
  t.match(listed.body, [{ zone_identifier: zone.zoneId, online: true }], 'in the list too')

  const gone = committed(service, e => e.type === 'DeviceDisconnected' && e.stream_id === `zone-${zone.zoneId}`)
  await controller.endAsync()
  t.equal(((await gone).data as { reason: string }).reason, 'closed')
  t.equal((await zoneState(service, zone)).online, false, 'offline after it ends')
})
