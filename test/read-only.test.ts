import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t, { type Test } from 'tap'
import { ManualClock } from '../src/clock.ts'
import { EventStore } from '../src/store/event-store.ts'
import { cleanEnv, devicelog, root } from './helpers/process.ts'
import { connectSensor, createSensor, http, publish, startService, tempDir, type Service, type Teardown } from './helpers/service.ts'
import { openWs, upgradeStatus } from './helpers/websocket.ts'
import { createZone } from './helpers/zones.ts'

// READ_ONLY=true: `npm start` on a replayed file (or a backup) serves it for reading, records
// nothing, and accepts no device. The real src/server.ts as its own process, as an auditor runs it.

const AUDITOR = 'auditor'
const AUDITOR_PASSWORD = 'correct horse battery'
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

/** src/server.ts with READ_ONLY=true on `database`; resolves once HTTP listens, with every log line it wrote. */
function serveReadOnly (t: Teardown, database: string, mqttPort: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: cleanEnv({ READ_ONLY: 'true', DATABASE_PATH: database, PORT: '0', MQTT_PORT: String(mqttPort), HOST: '127.0.0.1', LOG_LEVEL: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines: Array<{ level: number, msg: string, [key: string]: unknown }> = []
  return new Promise<{ url: string, lines: typeof lines, stderr: () => string, stop: () => Promise<number | null> }>((resolve, reject) => {
    let stderr = ''
    let url: string | undefined
    child.stderr!.on('data', chunk => { stderr += chunk })
    void exited.then(code => reject(new Error(`server exited (${code}) before listening: ${stderr}`)))
    createInterface({ input: child.stdout! }).on('line', line => {
      const entry = JSON.parse(line)
      lines.push(entry)
      url ??= /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(entry.msg ?? '')?.[1]
      if (url !== undefined && /^read-only/.test(entry.msg)) resolve({ url, lines, stderr: () => stderr, stop: () => { child.kill('SIGTERM'); return exited } })
    })
  })
}

/** Where an auditor starts: a live service that ran for a while, stopped, and its log replayed up to a moment. */
async function replayedPast (t: Test) {
  const service = await startService(t, { clock: new ManualClock() })
  const sensor = await createSensor(service, { configuration: { interval: 5 } })
  const client = await connectSensor(t, service, sensor)
  for (let i = 0; i < 5; i++) {
    await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: 1_767_225_600 + i, value: { i } }] })
  }
  // A zone whose timer run is due: a service that ran timers would end it at once, and record it.
  const zone = await createZone(service, { token: sensor.token, networkId: sensor.networkId })
  const run = await fetch(`${service.url}/timer?duration=60`, { headers: { authorization: `Bearer ${sensor.token}` } })
  t.equal(run.status, 200, await run.text())
  t.equal((await http(service, 'POST', '/users', { body: { username: AUDITOR, password: AUDITOR_PASSWORD } })).status, 201)
  const position = service.app.store.headPosition
  await client.endAsync()
  await service.close()
  const out = join(tempDir(t), 'past.db')
  const replayed = await devicelog(['replay', '--database', service.databasePath, '--out', out, '--until', String(position)])
  if (replayed.code !== 0) throw new Error(replayed.stderr)
  return { out, position, sensor, zone }
}

t.test('READ_ONLY=true serves the past: reads 200, every write 405, no MQTT, nothing written', async t => {
  const { out, position, sensor } = await replayedPast(t)
  const before = sha256(out)
  const mqttPort = await freePort()
  const server = await serveReadOnly(t, out, mqttPort)
  const service = { url: server.url } as Service
  const get = (path: string) => http(service, 'GET', path, { token: sensor.token })

  t.match((await http(service, 'GET', '/status')).body, { store: { status: 'read_only' } })
  t.match((await get(`/sensors/${sensor.sensorId}`)).body, { revision: 0, configuration: { interval: 5 } })
  const measurements = await get(`/sensors/${sensor.sensorId}/measurements?creation_timestamp=0`)
  t.equal(measurements.status, 200)
  t.equal(measurements.body.length, 5)
  const feed = await get('/api/v1/events?limit=1000')
  t.equal(feed.status, 200)
  t.ok(feed.body.events.length > 0)
  t.match((await get('/api/v1/verify')).body, { ok: true, count: position, checkpoints: { holding: 0 } })
  t.equal((await fetch(`${server.url}/`)).status, 200, 'the console')
  const live = await openWs(t, service, `/api/v1/events/ws?access_token=${sensor.token}`)
  live.ws.close()

  const writes: Array<[string, string, unknown]> = [
    ['POST', '/users', { username: 'someone', password: '12345678' }],
    ['DELETE', '/authentication', undefined],
    ['POST', '/networks', { network_name: 'new' }],
    ['PUT', `/sensors/${sensor.sensorId}`, { sensor_name: 'x', network_identifier: sensor.networkId, configuration: {} }],
    ['PATCH', `/sensors/${sensor.sensorId}`, {}],
    ['POST', '/api/v1/zones', { name: 'new', network_identifier: sensor.networkId }]
  ]
  for (const [method, path, body] of writes) {
    const refused = await http(service, method, path, { token: sensor.token, body })
    t.equal(refused.status, 405, `${method} ${path}`)
    t.strictSame(Object.keys(refused.body), ['detail'], "the service's error shape")
    t.match(refused.body.detail, /read-only copy of the log \(READ_ONLY=true\)/)
    t.equal(refused.headers.get('allow'), 'GET, HEAD')
  }
  // Logging in records nothing here: the copy's users get a token held in memory.
  const login = (password: string) => http(service, 'POST', '/authentication', { body: { username: AUDITOR, password } })
  t.equal((await http(service, 'POST', '/authentication', { body: { username: 'nobody', password: 'x' } })).status, 404, 'a user the copy does not know')
  const session = await login(AUDITOR_PASSWORD)
  t.equal(session.status, 200, 'a user of the copy logs in')
  t.equal((await http(service, 'GET', '/networks', { token: session.body.access_token })).status, 200, 'and reads with that token')
  t.equal((await http(service, 'GET', '/networks', { token: 'not-a-token' })).status, 401, 'a made-up token opens nothing')
  for (let i = 0; i < 10; i++) t.equal((await login('wrong horse')).status, 401, `wrong password ${i + 1}`)
  t.equal((await login(AUDITOR_PASSWORD)).status, 429, 'past MAX_FAILED_LOGINS_PER_MINUTE, refused (counted in memory)')
  t.equal((await http(service, 'DELETE', '/authentication', { token: session.body.access_token })).status, 405, 'logging out is a write: the session ends with the process')

  const startRun = await get('/manual')
  t.equal(startRun.status, 405, 'a GET that writes (the irrigation clock\'s /manual) is refused by the log itself')
  t.match(startRun.body, { detail: /read-only/ })

  // No device connects: nothing listens on MQTT_PORT, and both device WebSockets refuse the upgrade.
  const tcp = await new Promise<string>(resolve => {
    const socket = connect(mqttPort, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve('connected') })
    socket.once('error', error => resolve((error as NodeJS.ErrnoException).code ?? 'error'))
  })
  t.equal(tcp, 'ECONNREFUSED', 'MQTT over TCP is not listening')
  t.equal(await upgradeStatus(service, '/mqtt'), 405, 'MQTT over WebSocket refused')
  t.equal(await upgradeStatus(service, '/chargers/some-charger?token=x'), 405, "a charger's socket refused")

  t.equal(await server.stop(), 0, `stops cleanly at once ${server.stderr()}`)
  t.equal(sha256(out), before, 'the file is exactly as it was')
  t.notOk(existsSync(`${out}-wal`) || existsSync(`${out}-journal`), 'no journal beside it')
  t.notOk(existsSync(`${out}.checkpoint-key.pem`), 'no key created beside it')
  t.strictSame(server.lines.filter(line => line.level >= 40).map(line => line.msg), [], 'no warning or error: no timer fired, no write was tried')
  t.match(server.lines.find(line => /^read-only/.test(line.msg)), { head: position })
})

t.test('a read-only store refuses every transact with 405, and refuses a file of other read models', async t => {
  const { out, position } = await replayedPast(t)
  const projections = { module: new URL('../src/projections.ts', import.meta.url), export: 'allProjections' }
  const store = await EventStore.open({ path: out, projections, clock: new ManualClock(), readOnly: true })
  t.teardown(() => store.close())
  t.equal(store.readOnly, true)
  t.equal(store.headPosition, position)
  t.strictSame(store.health, { status: 'read_only' })
  await t.rejects(store.append('sensor-x', [], { metadata: { actor: 'system' } }), { statusCode: 405, code: 'DL_READ_ONLY' })
  await t.rejects(store.transact(() => 1), { statusCode: 405, code: 'DL_READ_ONLY' })
  t.ok(store.read({ limit: 1 }).length === 1, 'reads work')

  const missing = EventStore.open({ path: join(tempDir(t), 'none.db'), projections, clock: new ManualClock(), readOnly: true })
  await t.rejects(missing, /READ_ONLY: no database at/)
  const other = { module: new URL('./helpers/names-projection.ts', import.meta.url), export: 'names1' }
  await t.rejects(EventStore.open({ path: out, projections: other, clock: new ManualClock(), readOnly: true }),
    /READ_ONLY: the read models of .* are not this version's: .*devicelog replay/)
})
