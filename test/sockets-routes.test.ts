import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { http, startService, type Service, type Teardown } from './helpers/service.ts'
import { committed, createSocket, httpWithHeaders, startPlug, type SocketFixture } from './helpers/sockets.ts'

// The smart-socket API end to end: the reference's routes against a simulated Tasmota plug on
// the embedded broker, with the service's clock in the test's hands.

const clockOf = (service: Service) => service.clock as ManualClock

/** A socket, its simulated plug (basic firmware unless told), on a fresh service. */
async function plugged (t: Teardown, env: Record<string, string> = {}, options: Parameters<typeof startPlug>[3] = {}) {
  const service = await startService(t, { env })
  const socket = await createSocket(service)
  const plug = await startPlug(t, service, socket, { watts: 600, ...options })
  return { service, socket, plug, clock: clockOf(service) }
}

const api = (service: Service, socket: SocketFixture) => ({
  call: (method: string, path: string, body?: unknown) => http(service, method, path, { token: socket.token, body }),
  /** The same route under /api/sockets/<topic>/... */
  of: (method: string, path: string, body?: unknown) => http(service, method, `/api/sockets/${socket.topic}${path.slice('/api'.length)}`, { token: socket.token, body })
})

interface Received { method: string, url: string, body: any }

/** A callback receiver on an ephemeral port: answers with the next status in `statuses` (then 200). */
async function callbackServer (t: Teardown, statuses: number[] = []) {
  const received: Received[] = []
  const waiting: Array<() => void> = []
  const server = createServer((request: IncomingMessage, response) => {
    let text = ''
    request.on('data', chunk => { text += chunk })
    request.on('end', () => {
      received.push({ method: request.method!, url: request.url!, body: JSON.parse(text) })
      response.writeHead(statuses.shift() ?? 200).end()
      waiting.splice(0).forEach(wake => wake())
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return {
    url: (path: string) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    received,
    /** Resolves once `count` requests have arrived. */
    async until (count: number) {
      while (received.length < count) await new Promise<void>(resolve => waiting.push(resolve))
      return received
    }
  }
}

t.test('POST /api/sockets registers a plug; GET lists the caller\'s plugs with presence', async t => {
  const service = await startService(t)
  const socket = await createSocket(service, { topic: 'kitchen_plug' })
  t.match(socket.password, /^[A-Za-z0-9_-]{32}$/, "a 32-character password, Tasmota's limit")

  const before = await http(service, 'GET', '/api/sockets', { token: socket.token })
  t.equal(before.status, 200)
  t.match(before.body, [{ socket_identifier: socket.socketId, topic: 'kitchen_plug', full_topic: '%prefix%/%topic%/', online: false, power: null }])

  const plug = await startPlug(t, service, socket, { deviceName: 'Kitchen' })
  const after = await http(service, 'GET', '/api/sockets/kitchen_plug', { token: socket.token })
  t.match(after.body, { online: true, power: 'OFF', device: { device_name: 'Kitchen' } }, 'online, and its status asked for when it subscribed')
  t.equal((await http(service, 'GET', `/api/sockets/${socket.socketId}`, { token: socket.token })).body.topic, 'kitchen_plug', 'by identifier too')

  const disconnected = committed(service, e => e.type === 'DeviceDisconnected' && e.stream_id === `socket-${socket.socketId}`)
  await plug.close()
  await disconnected
  t.equal((await http(service, 'GET', '/api/sockets/kitchen_plug', { token: socket.token })).body.online, false, 'offline once it disconnects')

  const taken = await http(service, 'POST', '/api/sockets', { token: socket.token, body: { name: 'again', topic: 'kitchen_plug', network_identifier: socket.networkId } })
  t.equal(taken.status, 409)
  t.type(taken.body.message, 'string')
  for (const topic of ['a/b', 'tasmotas', 'x'.repeat(33), '', 'a+b', 'plug#']) {
    const bad = await http(service, 'POST', '/api/sockets', { token: socket.token, body: { name: 'n', topic, network_identifier: socket.networkId } })
    t.equal(bad.status, 422, `topic ${JSON.stringify(topic)}`)
    t.type(bad.body.message, 'string')
  }
  const badFullTopic = await http(service, 'POST', '/api/sockets', { token: socket.token, body: { name: 'n', topic: 'ok1', network_identifier: socket.networkId, full_topic: 'devices/%topic%/' } })
  t.equal(badFullTopic.status, 422, 'a FullTopic without %prefix%')

  const stranger = await createSocket(service)
  t.equal((await http(service, 'POST', '/api/sockets', { token: stranger.token, body: { name: 'n', topic: 'ok2', network_identifier: socket.networkId } })).status, 404, "another's network")
  t.equal((await http(service, 'GET', '/api/sockets/kitchen_plug', { token: stranger.token })).status, 404, "another's socket is not found")
  t.notOk((await http(service, 'GET', '/api/sockets', { token: stranger.token })).body.some((s: any) => s.topic === 'kitchen_plug'))
  const anonymous = await http(service, 'GET', '/api/sockets')
  t.equal(anonymous.status, 401)
  t.type(anonymous.body.message, 'string', 'errors are {message}')
  t.equal((await http(service, 'GET', '/api/server/status')).status, 401, 'the reference routes need a token too')
})

t.test('instances share the plug: the first switches it on, the last off, with the energy between', async t => {
  const { service, socket, plug, clock } = await plugged(t)
  const { call, of } = api(service, socket)

  const first = await call('POST', '/api/instance?timeout=600000')
  t.equal(first.status, 200)
  t.ok(plug.isOn, 'the plug is on')
  t.match(first.body.instance, { timeout: 600000, status: 'running', powerOnTimestamp: '2026-01-01T00:00:00.000Z', stopDueTimestamp: '2026-01-01T00:10:00.000Z' })
  t.type(first.body.instance.energy.Total, 'number', 'the energy reading at its start')
  const a = first.body.instance.id as string

  const second = await of('POST', '/api/instance', { timeout: 600000 })
  t.equal(second.status, 200, 'under /api/sockets/<topic>/ too, timeout in the body')
  t.equal(second.body.instance.powerOnTimestamp, null, 'the plug was on already')
  const b = second.body.instance.id as string

  const polled = committed(service, e => e.type === 'EnergyReported' && e.recorded_at === '2026-01-01T00:01:00.000Z')
  clock.advance(60_000)
  await polled
  const running = await call('GET', `/api/instance/${a}`)
  t.ok(running.body.instance.energyKwh > 0, 'energy counted so far while it runs')
  t.strictSame((await call('GET', `/api/instance?instanceId=${a}`)).body.instance.id, a, '?instanceId= as the reference clients send it')

  const stopA = await call('PUT', `/api/instance/${a}`)
  t.equal(stopA.status, 200)
  t.match(stopA.body.instance, { status: 'stopped', stopReason: 'requested', powerOffTimestamp: null })
  t.ok(plug.isOn, 'still on: another instance runs')

  const stopB = await of('PUT', `/api/instance/${b}`)
  t.equal(stopB.status, 200)
  t.notOk(plug.isOn, 'the last one switched it off')
  t.match(stopB.body.instance, { powerOffTimestamp: '2026-01-01T00:01:00.000Z' })
  t.equal(stopB.body.instance.energyKwh, 0.01, '600 W for a minute: what the plug counted between its start and its stop')
  t.equal((await call('PUT', `/api/instance/${b}`)).status, 200, 'stopping a stopped instance is fine')

  const status = await call('GET', '/api/server/status')
  t.match(status.body, {
    isEmergencyStopped: false, runningInstances: [], power: 'OFF', online: true, connectedSocketName: 'Simulated Plug',
    currentTimestamp: '2026-01-01T00:01:00.000Z',
    powerStatus: [{ powerOn: { instanceId: a, timestamp: '2026-01-01T00:00:00.000Z' }, powerOff: { instanceId: b, timestamp: '2026-01-01T00:01:00.000Z' } }]
  })
  t.type(status.body.energyToday, 'number')
  t.type(status.body.initialEnergy.Total, 'number')

  const download = await fetch(`${service.url}/api/download`, { headers: { authorization: `Bearer ${socket.token}` } })
  t.match(download.headers.get('content-disposition'), /attachment; filename="server_state.json"/)
  const saved = await download.json() as any
  t.strictSame(Object.keys(saved.instances).sort(), [a, b].sort())
  t.equal(saved.server.powerStatus.length, 1)

  const deleted = await call('DELETE', `/api/instance/${a}`)
  t.equal(deleted.status, 200)
  t.equal(deleted.body.instance.id, a, 'the deleted instance, as it was')
  t.equal((await call('GET', `/api/instance/${a}`)).status, 404)
  t.equal((await call('DELETE', `/api/instance/${a}`)).status, 404)
  t.equal((await call('PUT', `/api/instance/${a}`)).status, 404)
})

t.test('start-wait-stop: 200 at once, stopped after the duration, the callback told', async t => {
  const { service, socket, plug, clock } = await plugged(t)
  const receiver = await callbackServer(t)
  const started = await httpWithHeaders(service, 'POST', '/api/start-wait-stop', socket.token, { 'CPEE-CALLBACK': receiver.url('/done/1') }, { duration: 5 })
  t.equal(started.status, 200)
  t.equal(started.headers.get('cpee-callback'), 'true', 'the callback header echoed')
  t.match(started.body.instance, { duration: 5, status: 'running', stopDueTimestamp: '2026-01-01T00:00:05.000Z' })
  t.ok(plug.isOn)

  const off = plug.nextCommand(c => c.topic.endsWith('/POWER') && c.payload === 'OFF')
  clock.advance(5000)
  await off
  const [callback] = await receiver.until(1)
  t.equal(callback!.method, 'PUT')
  t.equal(callback!.url, '/done/1')
  t.match(callback!.body, { message: /duration/, instance: { id: started.body.instance.id, status: 'stopped', stopReason: 'duration', stopTimestamp: '2026-01-01T00:00:05.000Z' } })
  const attempted = await committed(service, e => e.type === 'CallbackAttempted')
  t.match(attempted.data, { attempt: 1, delivered: true, status: 200 })
  const instance = (await api(service, socket).call('GET', `/api/instance/${started.body.instance.id}`)).body.instance
  t.match(instance.callbacks, [{ url: receiver.url('/done/1'), delivered: true, attempts: [{ attempt: 1, status: 200, error: null }] }], 'each attempt visible in the instance')
  t.notOk(plug.isOn)
})

t.test('a failed callback is retried with backoff, each attempt recorded', async t => {
  const { service, socket, clock } = await plugged(t)
  const receiver = await callbackServer(t, [500, 503])
  const started = await httpWithHeaders(service, 'POST', '/api/start-wait-stop', socket.token, { 'x-callback': receiver.url('/cb') }, { duration: 1 })
  const firstAttempt = committed(service, e => e.type === 'CallbackAttempted')
  clock.advance(1000)
  await receiver.until(1)
  t.match((await firstAttempt).data, { attempt: 1, delivered: false, status: 500, next_attempt_at: '2026-01-01T00:00:02.000Z' })
  const second = committed(service, e => e.type === 'CallbackAttempted')
  clock.advance(1000)
  t.match((await second).data, { attempt: 2, delivered: false, status: 503, next_attempt_at: '2026-01-01T00:00:04.000Z' }, 'twice the delay each time')
  const third = committed(service, e => e.type === 'CallbackAttempted')
  clock.advance(2000)
  t.match((await third).data, { attempt: 3, delivered: true, status: 200, next_attempt_at: null })
  const instance = (await api(service, socket).call('GET', `/api/instance/${started.body.instance.id}`)).body.instance
  t.strictSame(instance.callbacks[0].attempts.map((a: any) => a.status), [500, 503, 200])
})

t.test('GET /api/wait answers {waiting: true}, then calls back {waiting: false}', async t => {
  const { service, socket, clock } = await plugged(t)
  const receiver = await callbackServer(t)
  const waiting = await httpWithHeaders(service, 'GET', '/api/wait?duration=3', socket.token, { 'cpee-callback': receiver.url('/w') })
  t.equal(waiting.status, 200)
  t.strictSame(waiting.body, { waiting: true })
  t.equal(waiting.headers.get('cpee-callback'), 'true')
  clock.advance(2999)
  const ended = committed(service, e => e.type === 'WaitEnded')
  clock.advance(1)
  await ended
  t.strictSame((await receiver.until(1))[0]!.body, { waiting: false })
  for (const query of ['', '?duration=0', '?duration=-2', '?duration=abc', '?duration=2147484']) {
    const bad = await api(service, socket).call('GET', `/api/wait${query}`)
    t.equal(bad.status, 422, `wait${query}`)
    t.type(bad.body.message, 'string')
  }
})

t.test('the reference scenario: an emergency stop while an instance runs, 409, recover, start again', async t => {
  const { service, socket, plug } = await plugged(t)
  const { call } = api(service, socket)
  const running = await call('POST', '/api/start-wait-stop', { duration: 600 })
  const stopped = await call('POST', '/api/emergency-stop')
  t.equal(stopped.status, 200)
  t.strictSame(stopped.body.stoppedInstances, [running.body.instance.id])
  t.type(stopped.body.message, 'string')
  t.notOk(plug.isOn)
  t.match((await call('GET', `/api/instance/${running.body.instance.id}`)).body.instance, { isEmergencyStopped: true, stopReason: 'emergency' })

  for (const [method, path] of [['POST', '/api/instance'], ['POST', '/api/start-wait-stop']] as const) {
    const refused = await call(method, path, { duration: 5 })
    t.equal(refused.status, 409, `${path} while emergency-stopped`)
    t.match(refused.body.message, /emergency/)
  }
  t.equal(service.app.store.read({ type: 'InstanceStartRefused' }).length, 2, 'each refusal recorded')
  t.equal((await call('GET', '/api/server/status')).body.isEmergencyStopped, true)
  t.equal((await call('POST', '/api/emergency-stop/')).status, 200, 'the trailing slash of the reference works too')

  const recovered = await call('PUT', '/api/recover')
  t.equal(recovered.status, 200)
  t.type(recovered.body.message, 'string')
  t.notOk(plug.isOn, 'recover does not switch the plug on')
  const again = await call('POST', '/api/start-wait-stop', { duration: 5 })
  t.equal(again.status, 200)
  t.ok(plug.isOn)
})

t.test('a plug that answers otherwise, or not at all', async t => {
  const { service, socket, plug, clock } = await plugged(t, { SOCKET_REPLY_TIMEOUT_MS: '2000' })
  const { call } = api(service, socket)

  plug.answerPowerWith = 'OFF'
  const refused = await call('POST', '/api/instance')
  t.equal(refused.status, 409, 'the plug answered OFF to ON')
  t.match(refused.body.message, /answered OFF/)
  const failures = () => service.app.store.read({ type: 'InstanceStartFailed' }).map(e => e.type === 'InstanceStartFailed' && e.data.reason)
  t.strictSame(failures(), ['plug_answered_off'])
  plug.answerPowerWith = undefined

  plug.reply = 'silent'
  const asked = plug.nextCommand(c => c.topic.endsWith('/POWER'))
  const pending = call('POST', '/api/instance')
  await asked
  clock.advance(2000)
  const silent = await pending
  t.equal(silent.status, 500)
  t.match(silent.body.message, /did not answer ON within 2000 ms/)
  t.equal(service.app.store.read({ type: 'PowerCommandUnanswered' }).length, 1, 'the silence is recorded')
  t.strictSame(failures(), ['plug_answered_off', 'no_answer'])
  t.strictSame((await call('GET', '/api/server/status')).body.runningInstances, [], 'a failed start runs nothing')

  plug.reply = 'normal'
  const started = await call('POST', '/api/instance')
  t.equal(started.status, 200)
  plug.reply = 'silent'
  const offAsked = plug.nextCommand(c => c.payload === 'OFF')
  const stopping = call('PUT', `/api/instance/${started.body.instance.id}`)
  await offAsked
  clock.advance(2000)
  t.equal((await stopping).status, 500, 'the plug did not confirm OFF')

  plug.reply = 'normal'
  const retried = await call('PUT', `/api/instance/${started.body.instance.id}`)
  t.equal(retried.status, 200, 'stopping again asks the plug once more')
  t.notOk(plug.isOn)

  plug.answerPowerWith = 'ON'
  t.equal((await call('POST', '/api/emergency-stop')).status, 409, 'the plug answered ON to an emergency stop')
  plug.answerPowerWith = undefined
  plug.reply = 'silent'
  const emergencyAsked = plug.nextCommand(c => c.payload === 'OFF')
  const emergency = call('POST', '/api/emergency-stop')
  await emergencyAsked
  clock.advance(2000)
  t.equal((await emergency).status, 500, 'no answer to an emergency stop')
})

t.test('bad input is 422 with a message; unknown instances 404', async t => {
  const { service, socket } = await plugged(t)
  const { call } = api(service, socket)
  for (const [method, path, body] of [
    ['POST', '/api/start-wait-stop', {}],
    ['POST', '/api/start-wait-stop', { duration: 0 }],
    ['POST', '/api/start-wait-stop', { duration: -5 }],
    ['POST', '/api/start-wait-stop', { duration: 'soon' }],
    ['POST', '/api/instance?timeout=-1', undefined],
    ['POST', '/api/instance?timeout=2147483648', undefined],
    ['POST', '/api/start-wait-stop', { duration: 2_147_484 }],
    ['POST', '/api/instance', { timeout: 'never' }],
    ['GET', '/api/instance', undefined],
    ['PUT', '/api/instance', undefined],
    ['DELETE', '/api/instance', undefined]
  ] as const) {
    const response = await call(method, path, body)
    t.equal(response.status, 422, `${method} ${path} ${JSON.stringify(body)}`)
    t.type(response.body.message, 'string')
  }
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const missing = await call(method, '/api/instance/no-such-instance')
    t.equal(missing.status, 404, `${method} of an unknown instance`)
    t.match(missing.body, { message: 'instance not found' })
  }
  t.equal((await http(service, 'GET', '/api/sockets/no_such_plug/server/status', { token: socket.token })).status, 404)
})

t.test('the reference scenario: five rounds of two overlapping start-wait-stop instances on one plug', async t => {
  const { service, socket, plug, clock } = await plugged(t)
  const { call } = api(service, socket)
  for (let round = 0; round < 5; round++) {
    const long = await call('POST', '/api/start-wait-stop', { duration: 10 })
    t.ok(plug.isOn)
    clock.advance(2000)
    const short = await call('POST', '/api/start-wait-stop', { duration: 5 })
    t.equal(short.body.instance.powerOnTimestamp, null, 'the second shares the plug')
    const shortStopped = committed(service, e => e.type === 'InstanceStopped' && e.data.instance_identifier === short.body.instance.id)
    clock.advance(5000)
    await shortStopped
    t.ok(plug.isOn, 'on while the long one runs')
    const off = plug.nextCommand(c => c.payload === 'OFF')
    clock.advance(3000)
    await off
    const longStopped = await committed(service, e => e.type === 'PowerReported' && e.data.outcome === 'confirmed' && e.data.power === 'OFF')
    t.equal(longStopped.type === 'PowerReported' && longStopped.data.instance_identifier, long.body.instance.id, 'the last to stop switched it off')
    t.notOk(plug.isOn)
  }
  const status = (await call('GET', '/api/server/status')).body
  t.equal(status.powerStatus.length, 5, 'five power periods')
  t.ok(status.powerStatus.every((p: any) => p.powerOff !== null))
  t.equal(service.app.store.read({ type: 'InstanceStopped' }).length, 10)
})

t.test('a timed instance survives a restart; one that fell due while down stops at once', async t => {
  const clock = new ManualClock()
  const first = await startService(t, { clock })
  const socket = await createSocket(first)
  const plug = await startPlug(t, first, socket)
  const started = await http(first, 'POST', '/api/start-wait-stop', { token: socket.token, body: { duration: 60 } })
  t.ok(plug.isOn)
  await plug.close()
  await first.close()

  clock.advance(120_000)
  const second = await startService(t, { clock, dir: first.dir })
  const again = await startPlug(t, second, socket, { on: true })
  t.equal((await http(second, 'GET', '/api/server/status', { token: socket.token })).body.runningInstances.length, 1, 'still running after the restart')
  const off = again.nextCommand(c => c.payload === 'OFF')
  clock.advance(0)
  await off
  const instance = (await http(second, 'GET', `/api/instance/${started.body.instance.id}`, { token: socket.token })).body.instance
  t.match(instance, { status: 'stopped', stopReason: 'duration' })
  t.notOk(again.isOn)
  t.equal(second.app.store.read({ type: 'DeviceDisconnected', stream: `socket-${socket.socketId}` }).length, 1, 'the disconnect at the first close is recorded once')
})

t.test('a press on the plug stops running instances and opens a manual period', async t => {
  const { service, socket, plug } = await plugged(t)
  const { call } = api(service, socket)
  const one = await call('POST', '/api/instance')
  const two = await call('POST', '/api/instance')
  const stoppedByHand = committed(service, e => e.type === 'PowerReported' && e.data.outcome === 'pressed')
  await plug.press()
  await stoppedByHand
  for (const id of [one.body.instance.id, two.body.instance.id]) {
    t.match((await call('GET', `/api/instance/${id}`)).body.instance, { status: 'stopped', isManuallyStopped: true, stopReason: 'pressed' })
  }
  const pressedOn = committed(service, e => e.type === 'PowerReported' && e.data.outcome === 'pressed')
  await plug.press()
  await pressedOn
  const periods = (await call('GET', '/api/server/status')).body.powerStatus
  t.match(periods.at(-1), { powerOn: { instanceId: '<manual>' }, powerOff: null }, 'switched on by hand: a <manual> period')
})
