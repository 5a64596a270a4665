// Desired state, delivered until confirmed: what a plug should be is in the log, and a command it
// missed (it was away, it answered otherwise, it switched on late) is sent again until the plug's
// own report agrees. The simulated plug in real-firmware mode, the service's ManualClock.
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { http, startService, type Service } from './helpers/service.ts'
import { committed, createSocket, startPlug, type SocketFixture } from './helpers/sockets.ts'

const socketEvents = (service: Service, socket: SocketFixture, type: string) =>
  service.app.store.read({ stream: `socket-${socket.socketId}`, type })

t.test('a plug left ON: the OFF published while it was away is sent again when it reconnects', async t => {
  const clock = new ManualClock()
  const first = await startService(t, { clock })
  const socket = await createSocket(first)
  const plug = await startPlug(t, first, socket, { firmware: 'real' })
  const started = await http(first, 'POST', '/api/start-wait-stop', { token: socket.token, body: { duration: 3 } })
  t.equal(started.status, 200)
  t.ok(plug.isOn, 'the plug is on while the instance runs')

  // The service stops after 0.5 s; the plug loses its broker but keeps its relay, as a real one.
  clock.advance(500)
  plug.drop()
  await first.close()
  clock.advance(4000)

  // The service is back first: the overdue instance stops, and its OFF goes to nobody.
  const second = await startService(t, { clock, dir: first.dir })
  const stopped = committed(second, e => e.type === 'InstanceStopped')
  clock.advance(0)
  t.match((await stopped).data, { instance_identifier: started.body.instance.id, reason: 'duration' })
  t.ok(plug.isOn, 'the plug, away, is still on')
  // Nobody answers the OFF within the reply timeout.
  const unanswered = committed(second, e => e.type === 'PowerCommandUnanswered')
  clock.advance(5000)
  await unanswered

  // The plug reconnects: it is sent OFF again, and switches off.
  const resent = committed(second, e => e.type === 'PowerResent')
  const confirmed = committed(second, e => e.type === 'PowerReported' && e.data.outcome === 'confirmed')
  const again = await startPlug(t, second, socket, { firmware: 'real', on: true })
  t.match((await resent).data, { power: 'OFF', reason: 'reconnected', instance_identifier: started.body.instance.id }, 'recorded as a resend')
  t.match((await confirmed).data, { power: 'OFF' }, 'and confirmed by the plug')
  t.notOk(again.isOn, 'the plug is off')
  t.same((await http(second, 'GET', '/api/server/status', { token: socket.token })).body.runningInstances, [], 'and nothing runs')
  t.same(socketEvents(second, socket, 'PowerReported').filter(e => e.type === 'PowerReported' && e.data.outcome === 'pressed'), [], 'its ON after the reconnect was not taken for a press')

  // In agreement now: a later reconnect sends nothing again.
  again.drop()
  const reconnected = committed(second, e => e.type === 'SocketStatusReported')
  const third = await startPlug(t, second, socket, { firmware: 'real', on: false })
  await reconnected
  t.equal(socketEvents(second, socket, 'PowerResent').length, 1, 'no resend to a plug that agrees')
  t.notOk(third.isOn)
})

t.test('a start whose ON got no answer: the late ON is switched back off', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const socket = await createSocket(service)
  const plug = await startPlug(t, service, socket, { firmware: 'real' })
  plug.reply = 'held'
  const starting = http(service, 'POST', '/api/instance', { token: socket.token })
  await plug.nextCommand(c => c.payload === 'ON')
  const failed = committed(service, e => e.type === 'InstanceStartFailed')
  clock.advance(5000)
  t.match((await failed).data, { reason: 'no_answer' })
  t.equal((await starting).status, 500, 'the start is reported failed')

  // The plug's ON arrives late: it is corrected, not taken for a press.
  const corrected = committed(service, e => e.type === 'PowerResent')
  const off = plug.nextCommand(c => c.payload === 'OFF')
  plug.reply = 'normal'
  await plug.releaseReplies()
  t.match((await corrected).data, { power: 'OFF', reason: 'contradicted' })
  await off
  const confirmed = committed(service, e => e.type === 'PowerReported' && e.data.outcome === 'confirmed' && e.data.power === 'OFF')
  await confirmed
  t.notOk(plug.isOn, 'the plug is off again')
  t.same(socketEvents(service, socket, 'PowerReported').filter(e => e.type === 'PowerReported' && e.data.outcome === 'pressed'), [], 'no press was inferred')
  t.same(socketEvents(service, socket, 'InstanceStopped'), [], 'and nothing was stopped as if by hand')
})

t.test('a connected plug that does not confirm is sent its desired power at a steady interval', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { SOCKET_RESEND_SECONDS: '30' } })
  const socket = await createSocket(service)
  const plug = await startPlug(t, service, socket, { firmware: 'real' })
  plug.reply = 'silent'
  const starting = http(service, 'POST', '/api/instance', { token: socket.token })
  await plug.nextCommand(c => c.payload === 'ON')
  clock.advance(5000)
  t.equal((await starting).status, 500)
  // The failed start leaves OFF desired, unconfirmed: the service cannot tell what a silent plug did. Each interval, OFF again.
  t.notOk(plug.isOn, 'a silent plug neither switches nor answers')
  for (let i = 1; i <= 2; i++) {
    const resent = committed(service, e => e.type === 'PowerResent')
    clock.advance(30_000)
    t.match((await resent).data, { power: 'OFF', reason: 'unconfirmed' }, `resend ${i}`)
  }
  // It answers again: the next resend is confirmed and the resends stop.
  plug.reply = 'normal'
  const confirmed = committed(service, e => e.type === 'PowerReported' && e.data.outcome === 'confirmed')
  clock.advance(30_000)
  await confirmed
  t.notOk(plug.isOn)
  const count = socketEvents(service, socket, 'PowerResent').length
  clock.advance(90_000)
  // (an HTTP round trip: a resend decided by the interval would have committed by now)
  await http(service, 'GET', '/api/server/status', { token: socket.token })
  t.equal(socketEvents(service, socket, 'PowerResent').length, count, 'no more resends once it agrees')
})

t.test('a press while connected and in agreement still counts as a press', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const socket = await createSocket(service)
  const plug = await startPlug(t, service, socket, { firmware: 'real' })
  const started = await http(service, 'POST', '/api/instance', { token: socket.token })
  t.equal(started.status, 200)
  const pressed = committed(service, e => e.type === 'PowerReported' && e.data.outcome === 'pressed')
  await plug.press()
  t.match((await pressed).data, { power: 'OFF' })
  t.match((await http(service, 'GET', `/api/instance/${started.body.instance.id}`, { token: socket.token })).body.instance, { status: 'stopped', stopReason: 'pressed' })
  t.same(socketEvents(service, socket, 'PowerResent'), [], 'a press is not corrected')
})
