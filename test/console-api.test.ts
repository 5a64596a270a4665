import Database from 'better-sqlite3'
import t from 'tap'
import WebSocket from 'ws'
import { connectSensor, createSensor, http, publish, startService } from './helpers/service.ts'
import { committed } from './helpers/sockets.ts'

// What the console needed from the API, and any client can use: log out, where the broker
// listens, the audit feed newest first, the hash chain's verification, the `events` channel.

t.test('DELETE /authentication revokes only the token it carries, as an event', async t => {
  const service = await startService(t)
  const user = await http(service, 'POST', '/users', { body: { username: 'leaving', password: 'correct horse' } })
  const first = user.body.access_token as string
  const second = (await http(service, 'POST', '/authentication', { body: { username: 'leaving', password: 'correct horse' } })).body.access_token as string
  const revoked = committed(service, e => e.type === 'AccessTokenRevoked')
  t.equal((await http(service, 'DELETE', '/authentication', { token: first })).status, 204)
  t.equal((await revoked).stream_id, `user-${user.body.user_identifier}`)
  t.equal((await http(service, 'GET', '/networks', { token: first })).status, 401, 'the revoked token opens nothing')
  t.equal((await http(service, 'GET', '/networks', { token: second })).status, 200, 'the other token still works')
  t.equal((await http(service, 'DELETE', '/authentication', { token: first })).status, 401, 'a revoked token cannot log out again')
  t.equal((await http(service, 'DELETE', '/authentication')).status, 401)
})

t.test('GET /api/v1/broker names the MQTT port the broker listens on', async t => {
  const service = await startService(t)
  const { token } = await createSensor(service)
  t.same((await http(service, 'GET', '/api/v1/broker', { token })).body, { mqtt_port: service.mqttPort, websocket_path: '/mqtt' })
  t.equal((await http(service, 'GET', '/api/v1/broker')).status, 401)
})

t.test('the audit feed newest first, paged with before; the verification of the chain', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const client = await connectSensor(t, service, sensor)
  for (let i = 0; i < 5; i++) {
    await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: 1700000000 + i, value: { i } }] })
  }
  const asc = (await http(service, 'GET', '/api/v1/events?limit=1000', { token: sensor.token })).body.events as Array<{ position: number }>
  const newest = (await http(service, 'GET', '/api/v1/events?order=desc&limit=3', { token: sensor.token })).body.events as Array<{ position: number }>
  t.same(newest.map(e => e.position), asc.map(e => e.position).reverse().slice(0, 3), 'the three newest, newest first')
  const older = (await http(service, 'GET', `/api/v1/events?order=desc&limit=3&before=${newest.at(-1)!.position}`, { token: sensor.token })).body.events as Array<{ position: number }>
  t.same(older.map(e => e.position), asc.map(e => e.position).reverse().slice(3, 6), 'the next page back')
  const typed = (await http(service, 'GET', '/api/v1/events?order=desc&type=MeasurementsRecorded', { token: sensor.token })).body.events as Array<{ type: string }>
  t.equal(typed.length, 5)
  t.ok(typed.every(e => e.type === 'MeasurementsRecorded'))
  t.equal((await http(service, 'GET', '/api/v1/events?order=sideways', { token: sensor.token })).status, 400)

  const verified = await http(service, 'GET', '/api/v1/verify', { token: sensor.token })
  t.match(verified.body, { ok: true, count: service.app.store.headPosition, head: /^[0-9a-f]{64}$/ })
  // Someone who drops the append-only trigger to edit history is caught.
  const db = new Database(service.databasePath)
  db.exec('DROP TRIGGER events_are_append_only_update')
  db.prepare(`UPDATE events SET data = '{}' WHERE position = 3`).run()
  db.close()
  t.same((await http(service, 'GET', '/api/v1/verify', { token: sensor.token })).body, { ok: false, position: 3, reason: 'hash does not match the row and its predecessor' })
  t.equal((await http(service, 'GET', '/api/v1/verify')).status, 401)
})

t.test("the 'events' channel forwards every event of the device's stream, with its position", async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const socket = new WebSocket(`${service.url.replace('http', 'ws')}/api/v1/devices/${sensor.sensorId}/ws?access_token=${sensor.token}`)
  t.teardown(() => socket.terminate())
  const messages: any[] = []
  let wake = () => {}
  socket.on('message', data => { messages.push(JSON.parse(String(data))); wake() })
  const next = async (type: string) => {
    for (;;) {
      const index = messages.findIndex(m => m.type === type)
      if (index >= 0) return messages.splice(index, 1)[0]
      await new Promise<void>(resolve => { wake = resolve })
    }
  }
  await next('connected')
  socket.send(JSON.stringify({ type: 'subscribe', channels: ['events'] }))
  t.same(await next('events'), { type: 'events', data: null, position: null }, 'no snapshot')
  const client = await connectSensor(t, service, sensor)
  const connected = await next('events')
  t.equal(connected.data.type, 'DeviceConnected')
  const recorded = committed(service, e => e.type === 'MeasurementsRecorded')
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: 1700000000, value: { t: 1 } }] })
  const update = await next('events')
  t.equal(update.data.type, 'MeasurementsRecorded')
  t.equal(update.position, (await recorded).position)
  t.same(update.data.data.measurements[0].value, { t: 1 })
})

t.test('the console is served at /, its assets beside it; any other unknown path is still a JSON 404', async t => {
  const service = await startService(t)
  const page = await fetch(service.url + '/')
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /text\/html/)
  const html = await page.text()
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1]
  t.ok(script, 'index.html names its script')
  const asset = await fetch(service.url + script!)
  t.equal(asset.status, 200)
  t.match(asset.headers.get('content-type'), /javascript/)
  t.ok((await asset.text()).length > 1000, 'the bundled console')
  const missing = await http(service, 'GET', '/no-such-page')
  t.equal(missing.status, 404)
  t.same(missing.body, { detail: 'no route GET /no-such-page' }, 'the API\'s own 404, not a file server\'s')
})
