import { once } from 'node:events'
import type { Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import WebSocket from 'ws'
import type { ManualClock } from '../src/clock.ts'
import { localIso } from '../src/irrigation/views.ts'
import { MAX_BUFFERED_BYTES } from '../src/live/websocket.ts'
import { connectMqtt, http, publish, startService, type Service, type Teardown } from './helpers/service.ts'
import { committed } from './helpers/sockets.ts'
import { testWithin } from './helpers/within.ts'
import { createZone, type ZoneFixture } from './helpers/zones.ts'
import { openWs, upgradeByHand, upgradeStatus, wsUrl, type TrackedSocket } from './helpers/websocket.ts'

// The zones' WebSocket channels end to end: real HTTP upgrades on an ephemeral port, real `ws`
// clients (and a raw TCP client that never reads), the service's ManualClock in the test's hands.

const test = testWithin(30_000)
const clockOf = (service: Service) => service.clock as ManualClock


/** The zone's channel, with the zone owner's token unless told (null: no token). */
const channelPath = (zone: ZoneFixture, token: string | null = zone.token) =>
  `/api/v1/zones/${zone.zoneId}/ws${token === null ? '' : `?access_token=${encodeURIComponent(token)}`}`

/** A connected `ws` client and every message it got, read in order with next(). */
type Client = TrackedSocket


/** Live interval timers of the clock with the ticker's period: the one clock timer of every WebSocket client. */
const tickTimers = (clock: ManualClock): number =>
  ((clock as any).timers as Array<{ cancelled: boolean, every?: number }>).filter(timer => !timer.cancelled && timer.every === 1000).length

const state = (mode: string, since: number | null, to: number | null) =>
  ({ type: 'state', mode, since: since === null ? null : localIso(since), to: to === null ? null : localIso(to) })

test('a zone channel: its state on connect, a clock every second, the state again only when it changes', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const other = await createZone(service, { token: zone.token, networkId: zone.networkId })
  const client = await openWs(t, service, channelPath(zone))
  const bystander = await openWs(t, service, channelPath(other))

  t.strictSame(await client.next(), state('wait_mode', null, null), 'the state, once, on connect')
  t.strictSame(await bystander.next(), state('wait_mode', null, null), "the other zone's client gets its own zone's state")

  const tick = async (who: Client[] = [client, bystander]) => {
    clock.advance(1000)
    const timestamp = localIso(clock.now())
    for (const c of who) t.strictSame(await c.next(), { type: 'clock', timestamp }, `a clock message at ${timestamp}`)
  }
  await tick()
  await tick()
  t.strictSame(client.unread(), [], 'one clock message per second, nothing else')

  // A mode change: exactly one state message, to this zone's clients only.
  const started = clock.now()
  const timer = await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/timer`, { token: zone.token })
  t.equal(timer.status, 200)
  t.equal(timer.body.mode, 'timer_mode')
  t.strictSame(await client.next(), state('timer_mode', started, started + 10_000), 'the new state is pushed')
  await tick()
  t.strictSame(client.unread(), [], 'the change is pushed once')

  // A timer while the timer runs changes nothing: no state message. The next thing is a tick.
  const ignored = committed(service, e => e.type === 'ZoneCommandIgnored' && e.stream_id === `zone-${zone.zoneId}`)
  const again = await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/timer`, { token: zone.token })
  t.equal(again.body.mode, 'timer_mode')
  t.equal(again.body.since, localIso(started), 'the timer was not restarted')
  t.equal(((await ignored).data as { reason: string }).reason, 'timer_running')
  await tick()

  // A valve report changes the zone (valve_open) but not its mode: no state message either.
  const controller = await connectMqtt(t, service.mqttUrl, { username: zone.zoneId, password: zone.password })
  await publish(controller, `zones/${zone.zoneId}/state`, { open: true })
  t.equal((await http(service, 'GET', `/api/v1/zones/${zone.zoneId}`, { token: zone.token })).body.valve_open, true, 'the report was recorded')
  await tick()

  // Manual while a timer runs: two events (the timer ended, manual started) in one commit, one state message.
  const manualAt = clock.now()
  t.equal((await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/manual`, { token: zone.token })).body.mode, 'manual_mode')
  t.strictSame(await client.next(), state('manual_mode', manualAt, null), 'manual is pushed')
  await tick()

  t.equal((await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/stop`, { token: zone.token })).body.mode, 'wait_mode')
  t.strictSame(await client.next(), state('wait_mode', null, null), 'stop is pushed')
  const stopAgain = await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/stop`, { token: zone.token })
  t.equal(stopAgain.body.mode, 'wait_mode', 'stop while waiting changes nothing')
  await tick()
  t.strictSame(client.unread(), [], 'nothing more on the zone channel')

  // A timer that runs out is pushed too, once.
  const shortStart = clock.now()
  await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/timer?duration=2`, { token: zone.token })
  t.strictSame(await client.next(), state('timer_mode', shortStart, shortStart + 2000))
  const completed = committed(service, e => e.type === 'ZoneRunEnded' && e.stream_id === `zone-${zone.zoneId}`)
  await tick()
  clock.advance(1000)
  t.equal(((await completed).data as { reason: string }).reason, 'completed')
  const tail = [await client.next(), await client.next()]
  t.strictSame(tail, [{ type: 'clock', timestamp: localIso(shortStart + 2000) }, state('wait_mode', null, null)], 'the tick, then the end of the timer')
  t.strictSame(await bystander.next(), { type: 'clock', timestamp: localIso(shortStart + 2000) })
  await tick()

  // The other zone's client got its clock ticks and nothing of the first zone's changes.
  t.ok(bystander.messages.slice(1).every(m => m.type === 'clock'), 'only clock messages on the other zone')
  t.strictSame(bystander.unread(), [], 'and it read every tick in step')
  // ...until its own zone changes.
  const otherStart = clock.now()
  await http(service, 'POST', `/api/v1/zones/${other.zoneId}/manual`, { token: other.token })
  t.strictSame(await bystander.next(), state('manual_mode', otherStart, null), "its own zone's change reaches it")
  await tick()
  t.strictSame(client.unread(), [], "the other zone's change does not reach the first zone's client")
})

test('a second client of a zone gets the current state on connect, and changes like the first', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const first = await openWs(t, service, channelPath(zone))
  t.strictSame(await first.next(), state('wait_mode', null, null))
  const at = clock.now()
  await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/manual`, { token: zone.token })
  t.strictSame(await first.next(), state('manual_mode', at, null))
  const second = await openWs(t, service, channelPath(zone))
  t.strictSame(await second.next(), state('manual_mode', at, null), 'the state now, not the state when the first joined')
  await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/stop`, { token: zone.token })
  for (const c of [first, second]) t.strictSame(await c.next(), state('wait_mode', null, null), 'both get the change')

  // After every client left, the zone changes unseen; a new client starts over from the state then.
  first.ws.close()
  second.ws.close()
  await Promise.all([once(first.ws, 'close'), once(second.ws, 'close')])
  const unseen = clock.now()
  await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/manual`, { token: zone.token })
  const third = await openWs(t, service, channelPath(zone))
  t.strictSame(await third.next(), state('manual_mode', unseen, null), 'the state at connect')
  await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/stop`, { token: zone.token })
  t.strictSame(await third.next(), state('wait_mode', null, null),
    'back to the state the earlier clients saw last: still a change for this one, so pushed')
})

test("the reference's /ws: the default zone's mode, timestamp, since and to every second", async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  await createZone(service, { token: zone.token, networkId: zone.networkId }) // not the default: created second
  const client = await openWs(t, service, `/ws?access_token=${zone.token}`)

  clock.advance(1000)
  const first = await client.next()
  t.strictSame(Object.keys(first).sort(), ['mode', 'since', 'timestamp', 'to'], 'exactly those keys')
  t.strictSame(first, { mode: 'wait_mode', timestamp: localIso(clock.now()), since: null, to: null })

  const started = clock.now()
  const timer = await fetch(`${service.url}/timer`, { headers: { authorization: `Bearer ${zone.token}` } })
  t.equal(timer.status, 200)
  t.equal(await timer.text(), 'timer mode starter')
  clock.advance(1000)
  const second = await client.next()
  t.strictSame(Object.keys(second).sort(), ['mode', 'since', 'timestamp', 'to'])
  t.strictSame(second, { mode: 'timer_mode', timestamp: localIso(clock.now()), since: localIso(started), to: localIso(started + 10_000) },
    'the first zone, driven by the root routes')
  clock.advance(1000)
  t.strictSame(await client.next(), { mode: 'timer_mode', timestamp: localIso(clock.now()), since: localIso(started), to: localIso(started + 10_000) },
    'every second, changed or not')
  t.strictSame(client.unread(), [], 'one message per second')
})

test('WebSocket authentication and visibility', async t => {
  const service = await startService(t)
  const zone = await createZone(service)
  const stranger = await createZone(service)

  t.equal(await upgradeStatus(service, channelPath(zone, null)), 401, 'no token: 401')
  t.equal(await upgradeStatus(service, channelPath(zone, 'not-a-token')), 401, 'a wrong token: 401')
  t.equal(await upgradeStatus(service, channelPath(zone, stranger.token)), 404, "another user's zone: 404")
  t.equal(await upgradeStatus(service, `/api/v1/zones/${randomUUID()}/ws?access_token=${zone.token}`), 404, 'an unknown zone: 404')
  t.equal(await upgradeStatus(service, '/ws'), 401, 'the root /ws needs a token unless IRRIGATION_PUBLIC')
  t.equal(await upgradeStatus(service, `/ws?access_token=${stranger.token}`), 404, "the default zone is another user's: 404")

  const own = await openWs(t, service, channelPath(zone))
  t.strictSame(await own.next(), state('wait_mode', null, null), 'with ?access_token= it opens')
})

test('IRRIGATION_PUBLIC=true: the root /ws answers without a token; with no zone it is 404', async t => {
  const service = await startService(t, { env: { IRRIGATION_PUBLIC: 'true' } })
  const clock = clockOf(service)
  t.equal(await upgradeStatus(service, '/ws'), 404, 'no zone yet: 404')

  const zone = await createZone(service)
  const client = await openWs(t, service, '/ws')
  clock.advance(1000)
  t.strictSame(await client.next(), { mode: 'wait_mode', timestamp: localIso(clock.now()), since: null, to: null }, 'ticks without a token')
  t.equal(await upgradeStatus(service, channelPath(zone, null)), 401, 'the zone channels still need a token')
})

test('1000 clients share one clock timer, and it stops when the last one leaves', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)

  // The service's side of each client: how many it accepted, and a wait for `n` of them to have closed.
  let accepted = 0
  let serverCloses = 0
  const closeWaiters: Array<{ n: number, resolve: () => void }> = []
  service.app.websocketServer.on('connection', (socket: WebSocket) => {
    accepted++
    socket.once('close', () => {
      serverCloses++
      for (const waiter of closeWaiters.filter(w => w.n <= serverCloses)) { closeWaiters.splice(closeWaiters.indexOf(waiter), 1); waiter.resolve() }
    })
  })
  const closedOnServer = (n: number) => new Promise<void>(resolve => { if (serverCloses >= n) resolve(); else closeWaiters.push({ n, resolve }) })

  t.equal(tickTimers(clock), 0, 'no clock timer without clients')
  const clients: WebSocket[] = []
  const ticked: Array<Promise<unknown>> = []
  const CHANNEL = 900
  const REFERENCE = 100
  const BATCH = 100
  for (let i = 0; i < CHANNEL + REFERENCE; i += BATCH) {
    await Promise.all(Array.from({ length: BATCH }, async (_, j) => {
      const path = i + j < CHANNEL ? channelPath(zone) : `/ws?access_token=${zone.token}`
      const ws = new WebSocket(wsUrl(service, path))
      clients.push(ws)
      ticked.push(new Promise(resolve => {
        ws.on('message', data => {
          const message = JSON.parse(String(data))
          if (message.type === 'clock' || (message.type === undefined && 'timestamp' in message)) resolve(message)
        })
      }))
      await once(ws, 'open')
    }))
  }
  t.teardown(() => { for (const ws of clients) if (ws.readyState !== ws.CLOSED) ws.terminate() })
  t.equal(accepted, 1000, 'the service accepted 1000 WebSockets')
  t.equal(tickTimers(clock), 1, 'ONE interval timer for all 1000 clients')

  clock.advance(1000)
  const timestamp = localIso(clock.now())
  const messages = await Promise.all(ticked) as any[]
  t.equal(messages.length, 1000)
  t.ok(messages.slice(0, CHANNEL).every(m => m.type === 'clock' && m.timestamp === timestamp), 'every channel client got the tick')
  t.ok(messages.slice(CHANNEL).every(m => m.mode === 'wait_mode' && m.timestamp === timestamp), 'every /ws client got the tick')
  t.equal(tickTimers(clock), 1, 'still one timer after it fired')

  // Half leave: the timer stays for the others.
  for (const ws of clients.slice(0, 500)) ws.close()
  await closedOnServer(500)
  t.equal(tickTimers(clock), 1, 'the timer runs on while clients remain')
  for (const ws of clients.slice(500)) ws.close()
  await closedOnServer(1000)
  t.equal(tickTimers(clock), 0, 'the timer is cancelled once the last client has left')
})

/** A WebSocket client that does the upgrade by hand, then never reads again. */
async function stalledClient (t: Teardown, service: Service, path: string): Promise<Socket> {
  const socket = await upgradeByHand(t, service.url, path)
  // Read up to the end of the 101 response (and maybe the first frame), then stop reading.
  let head = Buffer.alloc(0)
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = await once(socket, 'data') as [Buffer]
    head = Buffer.concat([head, chunk])
  }
  socket.pause()
  const status = head.subarray(0, head.indexOf('\r\n')).toString()
  if (!status.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${status}`)
  return socket
}

test('a client that stops reading is dropped, not buffered without bound', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const zone = await createZone(service)
  const other = await createZone(service, { token: zone.token, networkId: zone.networkId })

  // The service's side of the stalled client: its 'close' is the service dropping it.
  const serverSocket = new Promise<WebSocket>(resolve => service.app.websocketServer.once('connection', resolve))
  const socket = await stalledClient(t, service, channelPath(zone))
  let dropped = false
  void (await serverSocket).once('close', () => { dropped = true })

  // A healthy client on another zone is served all along, and keeps its connection.
  const healthy = await openWs(t, service, channelPath(other))
  t.strictSame(await healthy.next(), state('wait_mode', null, null))

  const frameBytes = JSON.stringify({ type: 'clock', timestamp: localIso(clock.now()) }).length + 2
  // Loopback kernel buffers (send and receive) hold a few MiB; then at most MAX_BUFFERED_BYTES queue in the service.
  const LIMIT_TICKS = Math.ceil((16 * 1024 * 1024 + MAX_BUFFERED_BYTES) / frameBytes)
  let ticks = 0
  while (!dropped && ticks < LIMIT_TICKS) {
    for (let i = 0; i < 500; i++) { clock.advance(1000); ticks++ }
    await new Promise(setImmediate)
  }
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`
  t.ok(dropped, `the stalled client was dropped after ${ticks} ticks (${mib(ticks * frameBytes)} of clock messages)`)
  t.ok(ticks < LIMIT_TICKS, `within ${LIMIT_TICKS} ticks (${mib(LIMIT_TICKS * frameBytes)})`)
  if (!dropped) return // the rest would wait for a close that never comes
  t.equal(tickTimers(clock), 1, 'the ticker runs on for the healthy client')

  // Reading again now: what it gets is bounded (less than was ticked), and then the connection ends.
  let received = 0
  socket.on('data', (chunk: Buffer) => { received += chunk.length })
  const closed = once(socket, 'close')
  socket.resume()
  await closed
  t.ok(received < ticks * frameBytes, `it got ${mib(received)}, less than the ${mib(ticks * frameBytes)} of ticks sent meanwhile`)

  // The healthy client got every tick and is still connected.
  while (healthy.messages.length < ticks + 1) await healthy.next()
  t.equal(healthy.messages.length, ticks + 1, 'the client that kept up got every tick')
  t.strictSame(healthy.messages.at(-1), { type: 'clock', timestamp: localIso(clock.now()) })
  t.equal(healthy.ws.readyState, healthy.ws.OPEN, 'and is still connected')
})
