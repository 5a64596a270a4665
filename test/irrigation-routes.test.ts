import { join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { localIso } from '../src/irrigation/views.ts'
import { devicelog } from './helpers/process.ts'
import { projectionRows } from './helpers/projection-rows.ts'
import { http, publish, startService, tempDir, type Service } from './helpers/service.ts'
import { committed } from './helpers/sockets.ts'
import { connectValve, createZone, type ZoneFixture } from './helpers/zones.ts'

// Irrigation zones end to end: real HTTP, a real MQTT valve controller, the service's clock in
// the test's hands. Times shown by the service are local ISO without a zone: expected values are
// computed with localIso, so the tests hold in any TZ.

const clockOf = (service: Service) => service.clock as ManualClock
const iso = (ms: number) => new Date(ms).toISOString()

const api = (service: Service, zone: ZoneFixture) => ({
  state: () => http(service, 'GET', `/api/v1/zones/${zone.zoneId}`, { token: zone.token }),
  command: (name: string, query = '') => http(service, 'POST', `/api/v1/zones/${zone.zoneId}/${name}${query}`, { token: zone.token }),
  history: (query = '') => http(service, 'GET', `/api/v1/zones/${zone.zoneId}/history${query}`, { token: zone.token })
})

/** The reference's root routes answer text. */
async function text (service: Service, path: string, token?: string) {
  const response = await fetch(service.url + path, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  return { status: response.status, body: await response.text(), type: response.headers.get('content-type') }
}

const runEnded = (service: Service, zone: ZoneFixture) =>
  committed(service, e => e.type === 'ZoneRunEnded' && e.stream_id === `zone-${zone.zoneId}`)

const zoneEvents = (service: Service, zone: ZoneFixture, type: string) =>
  service.app.store.read({ stream: `zone-${zone.zoneId}`, type })

t.test('POST /api/v1/zones registers a zone with its valve credentials; GET shows only the caller\'s', async t => {
  const service = await startService(t)
  const user = await http(service, 'POST', '/users', { body: { username: 'gardener', password: 'correct horse' } })
  const token = user.body.access_token as string
  const networkId = (await http(service, 'POST', '/networks', { token, body: { network_name: 'garden' } })).body.network_identifier as string

  const created = await http(service, 'POST', '/api/v1/zones', { token, body: { name: 'lawn', network_identifier: networkId } })
  t.equal(created.status, 201)
  const zoneId = created.body.zone_identifier as string
  t.match(zoneId, /^[0-9a-f-]{36}$/)
  t.equal(created.body.mqtt.username, zoneId, 'the controller logs in as the zone')
  t.type(created.body.mqtt.password, 'string')
  t.ok(created.body.mqtt.password.length >= 16, 'a real secret')

  const shown = await http(service, 'GET', `/api/v1/zones/${zoneId}`, { token })
  t.equal(shown.status, 200)
  t.strictSame(shown.body, {
    zone_identifier: zoneId, name: 'lawn', network_identifier: networkId, timer_seconds: 10,
    mode: 'wait_mode', since: null, to: null, valve_open: null, valve_mismatch: false, online: false
  }, 'a new zone waits, with the default timer of 10 s')
  t.equal((await http(service, 'POST', '/api/v1/zones', { token, body: { name: 'beds', network_identifier: networkId, timer_seconds: 45 } })).status, 201)

  const zone: ZoneFixture = { token, networkId, zoneId, password: created.body.mqtt.password }
  const connected = committed(service, e => e.type === 'DeviceConnected' && e.stream_id === `zone-${zoneId}`)
  await connectValve(t, service, zone)
  await connected
  t.equal((await http(service, 'GET', `/api/v1/zones/${zoneId}`, { token })).body.online, true, 'its credentials work on the broker')

  const bad: Array<[string, unknown]> = [
    ['missing name', { network_identifier: networkId }],
    ['empty name', { name: '', network_identifier: networkId }],
    ['missing network', { name: 'x' }],
    ['timer_seconds 0', { name: 'x', network_identifier: networkId, timer_seconds: 0 }],
    ['negative timer_seconds', { name: 'x', network_identifier: networkId, timer_seconds: -5 }],
    ['non-number timer_seconds', { name: 'x', network_identifier: networkId, timer_seconds: 'abc' }]
  ]
  for (const [what, body] of bad) {
    const answer = await http(service, 'POST', '/api/v1/zones', { token, body })
    t.equal(answer.status, 400, what)
    t.type(answer.body.detail, 'string', `${what}: errors say why`)
  }
  t.equal((await http(service, 'POST', '/api/v1/zones', { body: { name: 'x', network_identifier: networkId } })).status, 401, 'no token')
  t.equal((await http(service, 'POST', '/api/v1/zones', { token: 'not-a-token', body: { name: 'x', network_identifier: networkId } })).status, 401, 'a wrong token')

  const stranger = await createZone(service, { name: 'stranger-zone' })
  const foreign = await http(service, 'POST', '/api/v1/zones', { token: stranger.token, body: { name: 'x', network_identifier: networkId } })
  t.equal(foreign.status, 404, 'a network the caller is not a member of is not found')
  t.equal((await http(service, 'POST', '/api/v1/zones', { token, body: { name: 'x', network_identifier: '00000000-0000-4000-8000-000000000000' } })).status, 404, 'nor is an unknown one')
  t.equal(service.app.store.read({ type: 'ZoneRegistered' }).length, 3, 'only the three zones were registered')

  const mine = await http(service, 'GET', '/api/v1/zones', { token })
  t.equal(mine.status, 200)
  t.strictSame(mine.body.map((z: any) => [z.name, z.timer_seconds]), [['lawn', 10], ['beds', 45]], 'the caller\'s zones, in creation order')
  const theirs = await http(service, 'GET', '/api/v1/zones', { token: stranger.token })
  t.strictSame(theirs.body.map((z: any) => z.zone_identifier), [stranger.zoneId])
  t.equal((await http(service, 'GET', '/api/v1/zones')).status, 401)

  t.equal((await http(service, 'GET', `/api/v1/zones/${stranger.zoneId}`, { token })).status, 404, 'another user\'s zone is not found')
  t.equal((await http(service, 'GET', `/api/v1/zones/${zoneId}`, { token: stranger.token })).status, 404)
  t.equal((await http(service, 'GET', '/api/v1/zones/00000000-0000-4000-8000-000000000000', { token })).status, 404, 'an unknown zone')
  t.equal((await http(service, 'POST', `/api/v1/zones/${zoneId}/manual`, { token: stranger.token })).status, 404, 'nor commanded by a stranger')
  t.equal((await http(service, 'GET', `/api/v1/zones/${zoneId}/history`, { token: stranger.token })).status, 404)
  t.equal((await http(service, 'GET', `/api/v1/zones/${zoneId}`, { token })).body.mode, 'wait_mode', 'the stranger changed nothing')
})

t.test('mode commands answer the new state; a timer runs out on the service clock', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const start = clock.now()
  const zone = await createZone(service)
  const { state, command, history } = api(service, zone)

  const manual = await command('manual')
  t.equal(manual.status, 200)
  t.match(manual.body, { zone_identifier: zone.zoneId, mode: 'manual_mode', since: localIso(start), to: null })
  t.strictSame((await state()).body, manual.body, 'what GET shows')
  t.match(manual.body.since, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$/, 'local ISO 8601 without a zone, as the reference')
  if (new Date(start).getTimezoneOffset() === 0) t.equal(manual.body.since, '2026-01-01T00:00:00.000', 'in UTC, the clock\'s own time')

  clock.advance(2_000)
  const ignoredTimer = await command('timer')
  t.equal(ignoredTimer.status, 200)
  t.match(ignoredTimer.body, { mode: 'manual_mode', since: localIso(start), to: null }, 'a timer is ignored while manual runs')
  t.match((await command('manual')).body, { mode: 'manual_mode', since: localIso(start) }, 'manual again changes nothing')

  const stop = await command('stop')
  t.equal(stop.status, 200)
  t.match(stop.body, { mode: 'wait_mode', since: null, to: null })

  const long = await command('timer', '?duration=30')
  t.equal(long.status, 200)
  const longSince = clock.now()
  t.match(long.body, { mode: 'timer_mode', since: localIso(longSince), to: localIso(longSince + 30_000) }, '?duration= in seconds')
  clock.advance(1_000)
  t.match((await command('timer', '?duration=5')).body, { mode: 'timer_mode', to: localIso(longSince + 30_000) }, 'a running timer is not restarted')
  const replaced = await command('manual')
  t.match(replaced.body, { mode: 'manual_mode', since: localIso(longSince + 1_000), to: null }, 'manual ends the timer')
  t.match((await history()).body[0], { mode: 'timer_mode', timestamp: localIso(longSince + 1_000), since: localIso(longSince), to: null },
    'the timer ended by manual is recorded with no `to`')
  await command('stop')

  for (const query of ['?duration=0', '?duration=abc', '?duration=-5', '?duration=']) {
    const bad = await command('timer', query)
    t.equal(bad.status, 400, `timer${query}`)
  }
  t.equal((await command('water')).status, 400, 'an unknown command is a bad request (the command is a validated parameter)')
  t.equal((await command('timer', '?duration=abc')).body.detail.includes('duration'), true, 'the error names the parameter')
  t.equal((await state()).body.mode, 'wait_mode', 'refused requests changed nothing')
  t.equal((await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/manual`)).status, 401, 'commands need a token')

  clock.advance(5_000)
  const since = clock.now()
  const timer = await command('timer')
  t.match(timer.body, { mode: 'timer_mode', since: localIso(since), to: localIso(since + 10_000) }, 'the zone\'s timer_seconds by default')

  const ended = runEnded(service, zone)
  clock.advance(9_999)
  t.equal((await state()).body.mode, 'timer_mode', 'still running a millisecond before its end')
  clock.advance(5_000)
  const event = await ended
  t.match(event.data, { mode: 'timer_mode', reason: 'completed', since: iso(since), to: iso(since + 10_000), ended_at: iso(since + 10_000) },
    'it completed at its due time, not when the clock got there')
  t.match((await state()).body, { mode: 'wait_mode', since: null, to: null })
  t.strictSame((await history()).body[0], { mode: 'timer_mode', timestamp: localIso(since + 10_000), since: localIso(since), to: localIso(since + 10_000) })

  // a timer stopped early is not completed later by its old due time
  const again = clock.now()
  await command('timer')
  clock.advance(3_000)
  await command('stop')
  clock.advance(20_000)
  t.equal((await command('stop')).body.mode, 'wait_mode')
  t.strictSame(zoneEvents(service, zone, 'ZoneRunEnded').at(-1)!.data,
    { zone_identifier: zone.zoneId, mode: 'timer_mode', since: iso(again), to: null, ended_at: iso(again + 3_000), reason: 'stopped' },
    'the last run ended is the stopped one: the cancelled timer did not fire')
})

t.test('history: newest first, 10 by default, ?limit up to 1000; ignored commands are in the log only', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const { command, history } = api(service, zone)
  t.strictSame((await history()).body, [], 'nothing ran yet')

  const expected: unknown[] = []
  for (let i = 0; i < 12; i++) {
    const since = clock.now()
    const mode = i % 2 === 0 ? 'manual_mode' : 'timer_mode'
    await command(mode === 'manual_mode' ? 'manual' : 'timer', '?duration=60')
    clock.advance(1_000 + i)
    await command('stop')
    expected.unshift({ mode, timestamp: localIso(clock.now()), since: localIso(since), to: null })
    clock.advance(5_000) // a wait period: not recorded
  }

  const byDefault = await history()
  t.equal(byDefault.status, 200)
  t.strictSame(byDefault.body, expected.slice(0, 10), 'the 10 newest, newest first, and no wait periods')
  t.strictSame((await history('?limit=3')).body, expected.slice(0, 3))
  t.strictSame((await history('?limit=1000')).body, expected)
  for (const limit of ['1001', '0', '-1', 'abc', '2.5']) t.equal((await history(`?limit=${limit}`)).status, 400, `?limit=${limit}`)

  // commands the rules refuse: none is a history entry, each is in the log
  await command('stop')
  await command('manual')
  await command('timer')
  await command('manual')
  clock.advance(1_000)
  await command('stop')
  const after = (await history('?limit=1000')).body
  t.equal(after.length, 13, 'one more entry: the manual run, not the refused commands')
  t.match(after[0], { mode: 'manual_mode', to: null })
  const audit = await http(service, 'GET', `/api/v1/events?stream=zone-${zone.zoneId}&type=ZoneCommandIgnored`, { token: zone.token })
  t.equal(audit.status, 200)
  t.strictSame(audit.body.events.map((e: any) => [e.data.command, e.data.reason]),
    [['stop', 'already_waiting'], ['timer', 'manual_running'], ['manual', 'manual_running']], 'the audit feed shows why each was refused')
  t.match(audit.body.events[0].metadata, { actor: /^user:/ }, 'and who sent it')
})

t.test('the valve follows the commanded mode, or the zone shows a mismatch', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const { state, command } = api(service, zone)
  const valve = await connectValve(t, service, zone)
  const received: any[] = []
  const waiting: Array<() => void> = []
  valve.on('message', (topic, payload) => {
    t.equal(topic, `zones/${zone.zoneId}/valve`)
    received.push(JSON.parse(payload.toString()))
    waiting.splice(0).forEach(wake => wake())
  })
  const message = async (count: number) => {
    while (received.length < count) await new Promise<void>(resolve => waiting.push(resolve))
    return received[count - 1]
  }
  await valve.subscribeAsync(`zones/${zone.zoneId}/valve`, { qos: 1 })
  t.strictSame(await message(1), { open: false, mode: 'wait_mode', since: null, to: null }, 'the retained command of a new zone')

  const start = clock.now()
  await command('manual')
  t.strictSame(await message(2), { open: true, mode: 'manual_mode', since: localIso(start), to: null }, 'a mode change is published')

  // the valve never answered: 5 s later the zone shows a mismatch
  const detected = committed(service, e => e.type === 'ValveMismatchDetected' && e.stream_id === `zone-${zone.zoneId}`)
  clock.advance(4_999)
  t.equal((await state()).body.valve_mismatch, false, 'not before 5 s')
  clock.advance(1)
  t.strictSame((await detected).data, { zone_identifier: zone.zoneId, commanded_open: true, reported_open: null })
  t.match((await state()).body, { valve_mismatch: true, valve_open: null })

  const agreed = committed(service, e => e.type === 'ValveStateReported' && e.stream_id === `zone-${zone.zoneId}`)
  await publish(valve, `zones/${zone.zoneId}/state`, { open: true })
  await agreed
  t.match((await state()).body, { valve_mismatch: false, valve_open: true, online: true }, 'an agreeing report clears it')

  // a valve that follows within 5 s is no mismatch
  await command('stop')
  t.match(await message(3), { open: false, mode: 'wait_mode' })
  const closed = committed(service, e => e.type === 'ValveStateReported' && e.stream_id === `zone-${zone.zoneId}`)
  await publish(valve, `zones/${zone.zoneId}/state`, { open: false })
  await closed
  clock.advance(10_000)
  await command('stop') // a commit after the 5 s: any check would have been decided by now
  t.equal(zoneEvents(service, zone, 'ValveMismatchDetected').length, 1, 'no second mismatch')
  t.match((await state()).body, { valve_mismatch: false, valve_open: false })

  // a valve that reports otherwise than commanded
  const since = clock.now()
  await command('timer')
  t.strictSame(await message(4), { open: true, mode: 'timer_mode', since: localIso(since), to: localIso(since + 10_000) })
  const second = committed(service, e => e.type === 'ValveMismatchDetected' && e.stream_id === `zone-${zone.zoneId}`)
  clock.advance(5_000)
  t.match((await second).data, { commanded_open: true, reported_open: false })
  t.match((await state()).body, { mode: 'timer_mode', valve_mismatch: true, valve_open: false })
  const wrongAgain = committed(service, e => e.type === 'ValveStateReported' && e.stream_id === `zone-${zone.zoneId}`)
  await publish(valve, `zones/${zone.zoneId}/state`, { open: false })
  await wrongAgain
  t.equal((await state()).body.valve_mismatch, true, 'a report that still disagrees keeps it')
  const ended = runEnded(service, zone)
  clock.advance(5_000)
  await ended
  t.match((await state()).body, { mode: 'wait_mode', valve_mismatch: false }, 'the timer ran out: the valve is now right, a new mode clears it')
  t.match(await message(5), { open: false, mode: 'wait_mode' })
})

t.test('the reference\'s root routes drive the default zone: the first created', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const owner = await createZone(service)
  const other = await createZone(service)

  t.equal((await text(service, '/manual')).status, 401, 'a bearer token is needed by default')
  t.equal((await text(service, '/history')).status, 401)

  const start = clock.now()
  const manual = await text(service, '/manual', owner.token)
  t.equal(manual.status, 200)
  t.equal(manual.body, 'clock mode starter')
  t.match(manual.type, /^text\/plain/)
  t.match((await api(service, owner).state()).body, { mode: 'manual_mode', since: localIso(start) })
  t.equal((await api(service, other).state()).body.mode, 'wait_mode', 'the second zone is not the default')

  const timer = await text(service, '/timer', owner.token)
  t.strictSame([timer.status, timer.body], [200, 'timer mode starter'])
  t.match(timer.type, /^text\/plain/)
  t.equal((await api(service, owner).state()).body.mode, 'manual_mode', 'same rules: ignored while manual runs')

  clock.advance(3_000)
  const stop = await text(service, '/stop', owner.token)
  t.strictSame([stop.status, stop.body], [200, 'stop'])
  t.match(stop.type, /^text\/plain/)
  t.equal((await api(service, owner).state()).body.mode, 'wait_mode')

  await text(service, '/timer?duration=2', owner.token)
  const ended = runEnded(service, owner)
  clock.advance(2_000)
  await ended

  const history = await http(service, 'GET', '/history', { token: owner.token })
  t.equal(history.status, 200)
  t.strictSame(history.body, [
    { mode: 'timer_mode', timestamp: localIso(start + 5_000), since: localIso(start + 3_000), to: localIso(start + 5_000) },
    { mode: 'manual_mode', timestamp: localIso(start + 3_000), since: localIso(start), to: null }
  ])
  t.strictSame((await http(service, 'GET', '/history?limit=1', { token: owner.token })).body, history.body.slice(0, 1))
  t.strictSame((await api(service, owner).history()).body, history.body, 'the same as the zone\'s own history')

  t.equal((await text(service, '/manual', other.token)).status, 404, 'a user outside the default zone\'s network')
  t.equal((await text(service, '/history', other.token)).status, 404)
  t.equal((await api(service, owner).state()).body.mode, 'wait_mode', 'who changed nothing')
})

t.test('no zone at all: the root routes are not found', async t => {
  const service = await startService(t)
  const user = await http(service, 'POST', '/users', { body: { username: 'nobody-gardens', password: 'correct horse' } })
  for (const path of ['/manual', '/timer', '/stop', '/history']) {
    t.equal((await text(service, path, user.body.access_token)).status, 404, path)
  }
  const open = await startService(t, { env: { IRRIGATION_PUBLIC: 'true' } })
  t.equal((await text(open, '/manual')).status, 404, 'public, still no zone')
  t.equal((await text(open, '/history')).status, 404)
})

t.test('IRRIGATION_PUBLIC=true: the root routes answer without a token', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { IRRIGATION_PUBLIC: 'true' } })
  const zone = await createZone(service)
  const start = clock.now()
  t.strictSame(await text(service, '/manual').then(r => [r.status, r.body]), [200, 'clock mode starter'])
  t.equal((await api(service, zone).state()).body.mode, 'manual_mode')
  const [started] = zoneEvents(service, zone, 'ManualModeStarted')
  t.match(started!.metadata, { actor: /^http:/ }, 'recorded as an anonymous HTTP client')
  clock.advance(1_000)
  t.strictSame(await text(service, '/stop').then(r => [r.status, r.body]), [200, 'stop'])
  const history = await http(service, 'GET', '/history')
  t.equal(history.status, 200)
  t.strictSame(history.body, [{ mode: 'manual_mode', timestamp: localIso(start + 1_000), since: localIso(start), to: null }])
  t.equal((await http(service, 'GET', `/api/v1/zones/${zone.zoneId}`)).status, 401, 'the zones API still needs a token')

  const closed = await startService(t, { env: { IRRIGATION_PUBLIC: 'false' } })
  await createZone(closed)
  t.equal((await text(closed, '/manual')).status, 401, 'IRRIGATION_PUBLIC=false')
})

t.test('IRRIGATION_ZONE picks the default zone, by identifier or by name', async t => {
  const clock = new ManualClock()
  const first = await startService(t, { clock })
  const front = await createZone(first, { name: 'front' })
  const back = await createZone(first, { token: front.token, networkId: front.networkId, name: 'back' })
  await first.close()

  const byId = await startService(t, { dir: first.dir, clock, env: { IRRIGATION_ZONE: back.zoneId } })
  t.equal((await text(byId, '/manual', front.token)).body, 'clock mode starter')
  t.equal((await api(byId, back).state()).body.mode, 'manual_mode', 'the zone named by its identifier')
  t.equal((await api(byId, front).state()).body.mode, 'wait_mode', 'not the first created')
  await byId.close()

  clock.advance(4_000)
  const byName = await startService(t, { dir: first.dir, clock, env: { IRRIGATION_ZONE: 'back' } })
  t.equal((await text(byName, '/stop', front.token)).body, 'stop')
  t.equal((await api(byName, back).state()).body.mode, 'wait_mode', 'the zone named by its name')
  t.strictSame((await http(byName, 'GET', '/history', { token: front.token })).body,
    [{ mode: 'manual_mode', timestamp: localIso(clock.now()), since: localIso(clock.now() - 4_000), to: null }])
  t.strictSame((await api(byName, front).history()).body, [], 'front never ran')
  await byName.close()

  const unknown = await startService(t, { dir: first.dir, clock, env: { IRRIGATION_ZONE: 'no-such-zone' } })
  t.equal((await text(unknown, '/manual', front.token)).status, 404, 'an IRRIGATION_ZONE that names no zone does not fall back to the first')
  t.equal((await api(unknown, front).state()).body.mode, 'wait_mode')
})

t.test('history survives a restart: it is a projection of the log', async t => {
  const clock = new ManualClock()
  const first = await startService(t, { clock })
  const zone = await createZone(first, { timerSeconds: 20 })
  const other = await createZone(first, { token: zone.token, networkId: zone.networkId })
  const { command } = api(first, zone)

  await command('timer')
  const completed = runEnded(first, zone)
  clock.advance(20_000)
  await completed
  clock.advance(1_000)
  await command('manual')
  await command('timer')
  clock.advance(2_000)
  await command('stop')
  await command('timer', '?duration=60')
  clock.advance(7_000)
  await command('manual')
  await api(first, other).command('manual')
  const before = (await api(first, zone).history()).body
  const beforeState = (await api(first, zone).state()).body
  const beforeOther = (await api(first, other).history()).body
  t.equal(before.length, 3)
  t.strictSame(before.map((h: any) => h.mode), ['timer_mode', 'manual_mode', 'timer_mode'])
  t.equal(beforeOther.length, 0)
  await first.close()

  const second = await startService(t, { dir: first.dir, clock })
  t.strictSame((await api(second, zone).history()).body, before, 'the same history after the restart')
  t.strictSame((await api(second, zone).state()).body, beforeState, 'and the same state (manual still runs)')
  t.strictSame((await http(second, 'GET', '/history', { token: zone.token })).body, before, 'the default zone is still the first created')
  clock.advance(1_000)
  await api(second, zone).command('stop')
  const after = (await api(second, zone).history()).body
  t.equal(after.length, 4, 'and it goes on')
  t.strictSame(after.slice(1), before)
})

t.test('a timer whose end passed while the service was down ends at once, at its due time', async t => {
  const start = Date.UTC(2026, 0, 1, 6)
  const first = await startService(t, { clock: new ManualClock(start) })
  const zone = await createZone(first)
  t.match((await api(first, zone).command('timer')).body, { mode: 'timer_mode', to: localIso(start + 10_000) })
  await first.close()

  const clock = new ManualClock(start + 60_000)
  const second = await startService(t, { dir: first.dir, clock })
  const ended = runEnded(second, zone)
  clock.advance(0)
  const event = await ended
  t.strictSame(event.data, {
    zone_identifier: zone.zoneId, mode: 'timer_mode', since: iso(start), to: iso(start + 10_000), ended_at: iso(start + 10_000), reason: 'completed'
  }, 'recorded with its due time as its end, not the restart time')
  t.match((await api(second, zone).state()).body, { mode: 'wait_mode', since: null, to: null })
  t.strictSame((await api(second, zone).history()).body,
    [{ mode: 'timer_mode', timestamp: localIso(start + 10_000), since: localIso(start), to: localIso(start + 10_000) }])
  t.equal(zoneEvents(second, zone, 'ZoneRunEnded').length, 1, 'ended once')

  // a timer still running at the restart ends at its due time, not at once
  const since = clock.now()
  await api(second, zone).command('timer', '?duration=30')
  await second.close()
  const laterClock = new ManualClock(since + 10_000)
  const third = await startService(t, { dir: first.dir, clock: laterClock })
  laterClock.advance(0)
  t.equal((await api(third, zone).state()).body.mode, 'timer_mode', 'still running after the restart')
  const rest = runEnded(third, zone)
  laterClock.advance(20_000)
  t.match((await rest).data, { reason: 'completed', ended_at: iso(since + 30_000) })
})

t.test('replaying the log rebuilds the same zones and history', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const other = await createZone(service, { token: zone.token, networkId: zone.networkId, timerSeconds: 3 })
  const { command } = api(service, zone)
  const valve = await connectValve(t, service, zone)
  await command('manual')
  const reported = committed(service, e => e.type === 'ValveStateReported')
  await publish(valve, `zones/${zone.zoneId}/state`, { open: true })
  await reported
  clock.advance(2_000)
  await command('timer')
  await command('stop')
  await command('timer')
  const completed = runEnded(service, zone)
  clock.advance(10_000)
  await completed
  await api(service, other).command('timer')
  const otherEnded = runEnded(service, other)
  clock.advance(3_000)
  await otherEnded
  // its valve never reported: 5 s after the timer ran out, a mismatch
  const mismatch = committed(service, e => e.type === 'ValveMismatchDetected' && e.stream_id === `zone-${other.zoneId}`)
  clock.advance(5_000)
  await mismatch
  await valve.endAsync()
  await service.close()

  const live = projectionRows(service.databasePath)
  t.equal(live.zones!.length, 2)
  t.equal(live.zone_history!.length, 3, 'three runs ended')
  const out = join(tempDir(t), 'replayed.db')
  const replayed = await devicelog(['replay', '--database', service.databasePath, '--out', out])
  t.equal(replayed.code, 0, replayed.stderr)
  const rebuilt = projectionRows(out)
  t.strictSame(rebuilt.zones, live.zones, 'zones, with their decider state')
  t.strictSame(rebuilt.zone_history, live.zone_history)
})
