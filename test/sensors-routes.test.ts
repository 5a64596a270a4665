import { randomUUID } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { connectSensor, http, publish, startService, type SensorFixture, type Service } from './helpers/service.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const BASE = Date.UTC(2026, 0, 1) / 1000

let counter = 0
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

async function newUser (service: Service): Promise<{ token: string, userId: string }> {
  const response = await http(service, 'POST', '/users', { body: { username: unique('user'), password: 'correct horse' } })
  if (response.status !== 201) throw new Error(`POST /users: ${response.status}`)
  return { token: response.body.access_token, userId: response.body.user_identifier }
}

async function newNetwork (service: Service, token: string, name = unique('network')): Promise<string> {
  const response = await http(service, 'POST', '/networks', { token, body: { network_name: name } })
  if (response.status !== 201) throw new Error(`POST /networks: ${response.status}`)
  return response.body.network_identifier
}

async function newSensor (service: Service, token: string, networkId: string, name = unique('sensor'), configuration: Record<string, unknown> = {}): Promise<SensorFixture> {
  const response = await http(service, 'POST', '/sensors', { token, body: { sensor_name: name, network_identifier: networkId, configuration } })
  if (response.status !== 201) throw new Error(`POST /sensors: ${response.status} ${JSON.stringify(response.body)}`)
  return { token, userId: '', networkId, sensorId: response.body.sensor_identifier, password: response.body.mqtt.password }
}

/** A member with a network and a sensor in it, plus a second user who is a member of nothing of theirs. */
async function world (service: Service) {
  const owner = await newUser(service)
  const networkId = await newNetwork(service, owner.token)
  const sensor = await newSensor(service, owner.token, networkId)
  const stranger = await newUser(service)
  return { owner, networkId, sensor, stranger }
}

interface Received { topic: string, payload: any, retain: boolean, qos: number }

/** Every message a client receives, in order; `next()` waits for the next one. */
function inbox (client: MqttClient) {
  const queue: Received[] = []
  const waiting: Array<(message: Received) => void> = []
  client.on('message', (topic, payload, packet) => {
    const message = { topic, payload: JSON.parse(payload.toString()), retain: packet.retain, qos: packet.qos }
    const waiter = waiting.shift()
    if (waiter === undefined) queue.push(message)
    else waiter(message)
  })
  return {
    next: () => new Promise<Received>(resolve => {
      const message = queue.shift()
      if (message === undefined) waiting.push(resolve)
      else resolve(message)
    }),
    get pending () { return queue.length }
  }
}

/** A fixed permutation, so insertion order never matches timestamp order. */
function shuffled (n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i)
  let seed = 12345
  for (let i = n - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648
    const j = seed % (i + 1)
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  return order
}

const chunks = <T>(items: T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

t.test('POST /sensors', async t => {
  const service = await startService(t)
  const { owner, networkId, stranger } = await world(service)

  t.test('201 with revision 0 and MQTT credentials that work', async t => {
    const response = await http(service, 'POST', '/sensors', {
      token: owner.token, body: { sensor_name: 'bulbasaur', network_identifier: networkId, configuration: { value: 23, nested: { list: [1, 'two', null] } } }
    })
    t.equal(response.status, 201)
    t.strictSame(Object.keys(response.body).sort(), ['mqtt', 'revision', 'sensor_identifier'])
    t.match(response.body.sensor_identifier, UUID)
    t.equal(response.body.revision, 0)
    t.strictSame(Object.keys(response.body.mqtt).sort(), ['password', 'username'])
    t.equal(response.body.mqtt.username, response.body.sensor_identifier)
    t.match(response.body.mqtt.password, /^[0-9a-f]{64}$/)
    const sensorId = response.body.sensor_identifier as string

    const read = await http(service, 'GET', `/sensors/${sensorId}`, { token: owner.token })
    t.equal(read.status, 200)
    t.strictSame(read.body, {
      sensor_identifier: sensorId,
      sensor_name: 'bulbasaur',
      network_identifier: networkId,
      revision: 0,
      configuration: { value: 23, nested: { list: [1, 'two', null] } },
      revised_at: '2026-01-01T00:00:00.000Z',
      acknowledged_at: null,
      success: null
    })
    t.notOk(JSON.stringify(read.body).includes(response.body.mqtt.password), 'the password is shown only at creation')

    const client = await connectSensor(t, service, { ...owner, networkId, sensorId, password: response.body.mqtt.password })
    t.ok(client.connected, 'the device connects with the returned credentials')
  })

  t.test('404 for an unknown network or one the caller is not a member of, alike', async t => {
    const body = (network_identifier: string) => ({ sensor_name: unique('s'), network_identifier, configuration: {} })
    const unknown = await http(service, 'POST', '/sensors', { token: owner.token, body: body(randomUUID()) })
    t.equal(unknown.status, 404)
    t.type(unknown.body.detail, 'string')
    const notUuid = await http(service, 'POST', '/sensors', { token: owner.token, body: body('not-a-network') })
    t.equal(notUuid.status, 404)
    const foreign = await http(service, 'POST', '/sensors', { token: stranger.token, body: body(networkId) })
    t.equal(foreign.status, 404)
    t.strictSame(foreign.body, unknown.body, 'the same answer: existence is not leaked')
  })

  t.test('409 for a name taken in the same network; another network may reuse it', async t => {
    const name = unique('twin')
    const first = await http(service, 'POST', '/sensors', { token: owner.token, body: { sensor_name: name, network_identifier: networkId, configuration: {} } })
    t.equal(first.status, 201)
    const second = await http(service, 'POST', '/sensors', { token: owner.token, body: { sensor_name: name, network_identifier: networkId, configuration: { other: true } } })
    t.equal(second.status, 409)
    t.type(second.body.detail, 'string')
    const otherNetwork = await newNetwork(service, owner.token)
    const elsewhere = await http(service, 'POST', '/sensors', { token: owner.token, body: { sensor_name: name, network_identifier: otherNetwork, configuration: {} } })
    t.equal(elsewhere.status, 201)
    const strangersNetwork = await newNetwork(service, stranger.token)
    const strangers = await http(service, 'POST', '/sensors', { token: stranger.token, body: { sensor_name: name, network_identifier: strangersNetwork, configuration: {} } })
    t.equal(strangers.status, 201)
    const listed = await http(service, 'GET', `/networks/${networkId}/sensors`, { token: owner.token })
    t.equal(listed.body.filter((s: { sensor_name: string }) => s.sensor_name === name).length, 1, 'the 409 created nothing')
  })

  t.test('400 for an invalid body', async t => {
    const valid = { sensor_name: unique('valid'), network_identifier: networkId, configuration: {} }
    const invalid: Array<[string, unknown]> = [
      ['missing sensor_name', { network_identifier: networkId, configuration: {} }],
      ['missing network_identifier', { sensor_name: 'x', configuration: {} }],
      ['missing configuration', { sensor_name: 'x', network_identifier: networkId }],
      ['empty sensor_name', { ...valid, sensor_name: '' }],
      ['sensor_name a number', { ...valid, sensor_name: 1 }],
      ['network_identifier a number', { ...valid, network_identifier: 1 }],
      ['configuration an array', { ...valid, configuration: [1, 2] }],
      ['configuration a string', { ...valid, configuration: 'x' }],
      ['configuration null', { ...valid, configuration: null }]
    ]
    const before = await http(service, 'GET', `/networks/${networkId}/sensors`, { token: owner.token })
    for (const [what, body] of invalid) {
      const response = await http(service, 'POST', '/sensors', { token: owner.token, body })
      t.equal(response.status, 400, what)
      t.type(response.body.detail, 'string', what)
    }
    const after = await http(service, 'GET', `/networks/${networkId}/sensors`, { token: owner.token })
    t.strictSame(after.body, before.body, 'nothing was created')
  })
})

t.test('PUT /sensors/<id>', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const { owner, networkId, sensor, stranger } = await world(service)
  const body = (configuration: Record<string, unknown>, sensor_name = 'weather', network_identifier = networkId) =>
    ({ sensor_name, network_identifier, configuration })

  t.test('each PUT makes the next revision', async t => {
    for (const revision of [1, 2, 3]) {
      clock.advance(1000)
      const response = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner.token, body: body({ interval: revision * 10 }) })
      t.equal(response.status, 200)
      t.strictSame(response.body, { sensor_identifier: sensor.sensorId, revision })
      const read = await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: owner.token })
      t.match(read.body, {
        sensor_name: 'weather', revision, configuration: { interval: revision * 10 },
        revised_at: new Date(Date.UTC(2026, 0, 1) + revision * 1000).toISOString()
      })
      t.strictSame(read.body.configuration, { interval: revision * 10 }, 'the configuration is replaced, not merged')
    }
  })

  t.test('404 for an unknown sensor and for a non-member, alike', async t => {
    const unknown = await http(service, 'PUT', `/sensors/${randomUUID()}`, { token: owner.token, body: body({}) })
    t.equal(unknown.status, 404)
    t.type(unknown.body.detail, 'string')
    const foreign = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: stranger.token, body: body({ hijacked: true }) })
    t.equal(foreign.status, 404)
    t.strictSame(foreign.body, unknown.body)
    // moving it into a network the caller is not a member of
    const strangersNetwork = await newNetwork(service, stranger.token)
    const moved = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner.token, body: body({}, 'weather', strangersNetwork) })
    t.equal(moved.status, 404)
    const read = await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: owner.token })
    t.match(read.body, { revision: 3, network_identifier: networkId, configuration: { interval: 30 } }, 'unchanged')
  })

  t.test('409 for a rename onto a taken name', async t => {
    const other = await newSensor(service, owner.token, networkId, 'taken')
    const response = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner.token, body: body({}, 'taken') })
    t.equal(response.status, 409)
    t.type(response.body.detail, 'string')
    t.match((await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: owner.token })).body, { sensor_name: 'weather', revision: 3 })
    // the other sensor may keep its own name across a revision
    const own = await http(service, 'PUT', `/sensors/${other.sensorId}`, { token: owner.token, body: body({ x: 1 }, 'taken') })
    t.strictSame(own.body, { sensor_identifier: other.sensorId, revision: 1 })
    // a renamed sensor frees its old name
    const renamed = await http(service, 'PUT', `/sensors/${other.sensorId}`, { token: owner.token, body: body({ x: 1 }, 'renamed') })
    t.equal(renamed.status, 200)
    t.equal((await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner.token, body: body({ interval: 40 }, 'taken') })).status, 200)
    t.equal((await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner.token, body: body({ interval: 30 }, 'weather') })).status, 200)
  })

  t.test('moving a sensor to another of the caller\'s networks', async t => {
    const second = await newNetwork(service, owner.token)
    const mover = await newSensor(service, owner.token, networkId)
    const response = await http(service, 'PUT', `/sensors/${mover.sensorId}`, { token: owner.token, body: body({}, 'mover', second) })
    t.strictSame(response.body, { sensor_identifier: mover.sensorId, revision: 1 })
    const inFirst = await http(service, 'GET', `/networks/${networkId}/sensors`, { token: owner.token })
    const inSecond = await http(service, 'GET', `/networks/${second}/sensors`, { token: owner.token })
    t.notOk(inFirst.body.some((s: { sensor_identifier: string }) => s.sensor_identifier === mover.sensorId))
    t.strictSame(inSecond.body.map((s: { sensor_identifier: string }) => s.sensor_identifier), [mover.sensorId])
  })

  t.test('400 for an invalid body', async t => {
    for (const invalid of [{}, { ...body({}), configuration: [] }, { ...body({}), sensor_name: '' }, { sensor_name: 'weather', network_identifier: networkId }]) {
      const response = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner.token, body: invalid })
      t.equal(response.status, 400, JSON.stringify(invalid))
      t.type(response.body.detail, 'string')
    }
    t.match((await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: owner.token })).body, { revision: 5 }, 'no revision was made')
  })
})

t.test('GET /networks/<id>/sensors', async t => {
  const service = await startService(t)
  const { owner, networkId, sensor, stranger } = await world(service)
  const second = await newSensor(service, owner.token, networkId, 'second', { a: 1 })
  await newSensor(service, owner.token, await newNetwork(service, owner.token), 'elsewhere')
  await http(service, 'PUT', `/sensors/${second.sensorId}`, { token: owner.token, body: { sensor_name: 'second', network_identifier: networkId, configuration: { a: 2 } } })
  const response = await http(service, 'GET', `/networks/${networkId}/sensors`, { token: owner.token })
  t.equal(response.status, 200)
  const name = (await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: owner.token })).body.sensor_name
  // all created at the same (manual) instant: the order among them is not part of the contract
  const byId = (a: { sensor_identifier: string }, b: { sensor_identifier: string }) => a.sensor_identifier < b.sensor_identifier ? -1 : 1
  t.strictSame([...response.body].sort(byId), [
    { sensor_identifier: sensor.sensorId, sensor_name: name, revision: 0, acknowledged_at: null, success: null },
    { sensor_identifier: second.sensorId, sensor_name: 'second', revision: 1, acknowledged_at: null, success: null }
  ].sort(byId))
  const empty = await http(service, 'GET', `/networks/${await newNetwork(service, owner.token)}/sensors`, { token: owner.token })
  t.strictSame(empty.body, [])
  const unknown = await http(service, 'GET', `/networks/${randomUUID()}/sensors`, { token: owner.token })
  t.equal(unknown.status, 404)
  const foreign = await http(service, 'GET', `/networks/${networkId}/sensors`, { token: stranger.token })
  t.equal(foreign.status, 404)
  t.strictSame(foreign.body, unknown.body)
})

t.test('GET /sensors/<id>/measurements pages by the sensor\'s own timestamp', async t => {
  const service = await startService(t)
  const { owner, networkId, sensor } = await world(service)
  const client = await connectSensor(t, service, sensor)
  const N = 1030
  // The sensor's timestamps, not the receipt time, order the pages: publish them out of order.
  const timestamp = (i: number) => BASE - 86_400 + i * 1.5 + 0.123456
  const items = shuffled(N).map(i => ({ revision: i % 3, timestamp: timestamp(i), value: { i, nested: { even: i % 2 === 0 } } }))
  for (const batch of [items.slice(0, 1000), items.slice(1000)]) {
    await publish(client, `measurements/${sensor.sensorId}`, { measurements: batch })
  }
  // another sensor's measurements, interleaved in time, are not this sensor's
  const neighbour = await newSensor(service, owner.token, networkId)
  const neighbourClient = await connectSensor(t, service, neighbour)
  await publish(neighbourClient, `measurements/${neighbour.sensorId}`, {
    measurements: Array.from({ length: 100 }, (_, i) => ({ revision: 0, timestamp: timestamp(i * 10) + 0.5, value: { neighbour: i } }))
  })

  const expected = (i: number) => ({ revision: i % 3, creation_timestamp: timestamp(i), measurement: { i, nested: { even: i % 2 === 0 } } })
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => expected(from + k))
  const page = async (query = '') => {
    const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/measurements${query}`, { token: owner.token })
    t.equal(response.status, 200, query)
    return response.body as Array<ReturnType<typeof expected>>
  }

  t.strictSame(await page(), range(N - 64, N), 'no parameters: the newest 64, ascending')
  t.strictSame(await page('?direction=previous'), range(N - 64, N), 'a direction alone: still the newest page')
  t.strictSame(await page(`?creation_timestamp=${timestamp(N - 64)}&direction=previous`), range(N - 128, N - 64), 'previous: the 64 before, exclusive')
  t.strictSame(await page(`?creation_timestamp=${timestamp(10)}&direction=next`), range(11, 75), 'next: the 64 after, exclusive')
  t.strictSame(await page(`?creation_timestamp=${timestamp(10)}`), range(11, 75), 'direction defaults to next')
  t.strictSame(await page(`?creation_timestamp=${timestamp(N - 1)}&direction=next`), [], 'nothing after the newest')
  t.strictSame(await page(`?creation_timestamp=${timestamp(0)}&direction=previous`), [], 'nothing before the oldest')
  t.strictSame(await page(`?creation_timestamp=${timestamp(20)}&direction=previous`), range(0, 20), 'a short first page')
  t.strictSame(await page(`?creation_timestamp=${timestamp(5) + 0.1}&direction=next`), range(6, 70), 'a key between two timestamps')

  // walking the whole history both ways sees every measurement once, in order
  // (at most as many pages as it takes, so a cursor that does not move fails rather than loops)
  const pages = Math.ceil(N / 64)
  const backwards: unknown[] = []
  for (let items = await page(), k = 0; items.length > 0 && k <= pages; items = await page(`?creation_timestamp=${items[0]!.creation_timestamp}&direction=previous`), k++) {
    backwards.unshift(...items)
  }
  t.equal(backwards.length, N)
  t.strictSame(backwards, range(0, N), 'backwards through every page')
  const forwards: unknown[] = []
  for (let items = await page('?creation_timestamp=0&direction=next'), k = 0; items.length > 0 && k <= pages; items = await page(`?creation_timestamp=${items.at(-1)!.creation_timestamp}&direction=next`), k++) {
    forwards.push(...items)
  }
  t.strictSame(forwards, range(0, N), 'forwards through every page')

  const neighbours = await http(service, 'GET', `/sensors/${neighbour.sensorId}/measurements`, { token: owner.token })
  t.equal(neighbours.body.length, 64)
  t.ok(neighbours.body.every((m: { measurement: { neighbour?: number } }) => typeof m.measurement.neighbour === 'number'), 'each sensor its own')
  const fresh = await newSensor(service, owner.token, networkId)
  t.strictSame((await http(service, 'GET', `/sensors/${fresh.sensorId}/measurements`, { token: owner.token })).body, [])

  for (const query of ['?direction=sideways', '?creation_timestamp=abc', '?creation_timestamp=Infinity']) {
    const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/measurements${query}`, { token: owner.token })
    t.equal(response.status, 400, query)
    t.type(response.body.detail, 'string')
  }
})

t.test('GET /sensors/<id>/logs pages by the sensor\'s own timestamp', async t => {
  const service = await startService(t)
  const { owner, sensor } = await world(service)
  const client = await connectSensor(t, service, sensor)
  const N = 150
  const severities = ['debug', 'info', 'warning', 'error'] as const
  const timestamp = (i: number) => BASE + i * 0.25 + 0.000001
  const log = (i: number) => ({
    severity: severities[i % 4]!,
    revision: i % 2,
    timestamp: timestamp(i),
    subject: `subject ${i % 5}`,
    ...(i % 3 === 0 ? {} : { details: `details of ${i}` })
  })
  for (const batch of chunks(shuffled(N).map(log), 70)) {
    await publish(client, `log-messages/${sensor.sensorId}`, { log_messages: batch })
  }
  const expected = (i: number) => ({
    revision: i % 2, creation_timestamp: timestamp(i), severity: severities[i % 4], subject: `subject ${i % 5}`,
    details: i % 3 === 0 ? null : `details of ${i}`
  })
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => expected(from + k))
  const page = async (query = '') => {
    const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/logs${query}`, { token: owner.token })
    t.equal(response.status, 200, query)
    return response.body
  }
  t.strictSame(await page(), range(N - 64, N), 'no parameters: the newest 64, ascending, every severity')
  t.strictSame(await page(`?creation_timestamp=${timestamp(N - 64)}&direction=previous`), range(N - 128, N - 64))
  t.strictSame(await page(`?creation_timestamp=${timestamp(N - 128)}&direction=previous`), range(0, N - 128))
  t.strictSame(await page(`?creation_timestamp=${timestamp(0)}&direction=previous`), [])
  t.strictSame(await page(`?creation_timestamp=${timestamp(0)}&direction=next`), range(1, 65))
  t.strictSame(await page(`?creation_timestamp=${timestamp(100)}&direction=next`), range(101, N))
  t.equal((await http(service, 'GET', `/sensors/${sensor.sensorId}/logs?direction=up`, { token: owner.token })).status, 400)
})

t.test('GET /sensors/<id>/logs/aggregates: warnings and errors by severity and subject', async t => {
  const service = await startService(t)
  const { owner, networkId, sensor } = await world(service)
  const client = await connectSensor(t, service, sensor)
  const at = (s: number) => BASE + s + 0.5
  await publish(client, `log-messages/${sensor.sensorId}`, {
    log_messages: [
      { severity: 'warning', revision: 0, timestamp: at(100), subject: 'The CPU is pretty hot' },
      { severity: 'warning', revision: 1, timestamp: at(300), subject: 'The CPU is pretty hot', details: 'really' },
      { severity: 'error', revision: 2, timestamp: at(200), subject: 'The CPU is burning', details: 'Please call the fire department' },
      { severity: 'error', revision: 0, timestamp: at(120), subject: 'The CPU is pretty hot' },
      { severity: 'info', revision: 5, timestamp: at(1000), subject: 'The CPU is pretty hot' },
      { severity: 'debug', revision: 6, timestamp: at(2000), subject: 'The CPU is burning' }
    ]
  })
  await publish(client, `log-messages/${sensor.sensorId}`, {
    log_messages: [
      { severity: 'warning', revision: 3, timestamp: at(150), subject: 'Fan' },
      { severity: 'warning', revision: 4, timestamp: at(50), subject: 'The CPU is pretty hot' },
      { severity: 'info', revision: 9, timestamp: at(3000), subject: 'Fan' }
    ]
  })
  // another sensor's logs are aggregated separately
  const other = await newSensor(service, owner.token, networkId)
  await publish(await connectSensor(t, service, other), `log-messages/${other.sensorId}`, {
    log_messages: [{ severity: 'error', revision: 0, timestamp: at(10), subject: 'The CPU is burning' }]
  })

  const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/logs/aggregates`, { token: owner.token })
  t.equal(response.status, 200)
  const row = (severity: string, subject: string, minRevision: number, maxRevision: number, min: number, max: number, count: number) => ({
    sensor_identifier: sensor.sensorId, severity, subject, min_revision: minRevision, max_revision: maxRevision,
    min_creation_timestamp: at(min), max_creation_timestamp: at(max), count
  })
  t.strictSame(response.body, [
    row('error', 'The CPU is pretty hot', 0, 0, 120, 120, 1),
    row('warning', 'Fan', 3, 3, 150, 150, 1),
    row('error', 'The CPU is burning', 2, 2, 200, 200, 1),
    row('warning', 'The CPU is pretty hot', 0, 4, 50, 300, 3)
  ], 'grouped by (severity, subject), ordered by max_creation_timestamp; debug and info left out')
  const others = await http(service, 'GET', `/sensors/${other.sensorId}/logs/aggregates`, { token: owner.token })
  t.strictSame(others.body, [{
    sensor_identifier: other.sensorId, severity: 'error', subject: 'The CPU is burning', min_revision: 0, max_revision: 0,
    min_creation_timestamp: at(10), max_creation_timestamp: at(10), count: 1
  }])
  const fresh = await newSensor(service, owner.token, networkId)
  t.strictSame((await http(service, 'GET', `/sensors/${fresh.sensorId}/logs/aggregates`, { token: owner.token })).body, [])
})

t.test('GET /sensors/<id>/rejections after bad input', async t => {
  const service = await startService(t)
  const { owner, networkId, sensor } = await world(service)
  const client = await connectSensor(t, service, sensor, { clientId: `client-${sensor.sensorId.slice(0, 8)}` })
  const badJson = '{"measurements": [ {'
  await publish(client, `measurements/${sensor.sensorId}`, badJson)
  const unknownField = { measurements: [{ revision: 0, timestamp: BASE, value: {}, extra: 1 }] }
  await publish(client, `measurements/${sensor.sensorId}`, unknownField)
  // mqtt.js rejects a SUBACK with failure code 0x80, carrying the packet
  const refused = await client.subscribeAsync(`configurations/${randomUUID()}`, { qos: 1 }).then(() => undefined, (error: { packet?: { granted?: number[] } }) => error)
  t.strictSame(refused?.packet?.granted, [128], 'a foreign subscription is refused in the SUBACK')
  // a good message after the bad ones is still recorded: nothing was cut off
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: BASE, value: { ok: true } }] })

  const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/rejections`, { token: owner.token })
  t.equal(response.status, 200)
  const rejections = response.body as any[]
  t.equal(rejections.length, 3)
  t.match(rejections[0], {
    kind: 'message', topic: `measurements/${sensor.sensorId}`, client_id: client.options.clientId, reason: 'invalid_json',
    payload_excerpt: badJson, payload_bytes: Buffer.byteLength(badJson)
  })
  t.match(rejections[1], {
    kind: 'message', topic: `measurements/${sensor.sensorId}`, reason: 'invalid_payload',
    payload_excerpt: JSON.stringify(unknownField), payload_bytes: Buffer.byteLength(JSON.stringify(unknownField))
  })
  t.match(rejections[1].detail, /extra|unrecognized/i, 'the reason names the problem')
  t.match(rejections[2], { kind: 'subscription', reason: 'foreign_topic', payload_excerpt: null, payload_bytes: null })
  for (const rejection of rejections) {
    t.type(rejection.position, 'number')
    t.equal(rejection.recorded_at, '2026-01-01T00:00:00.000Z')
  }
  t.ok(rejections[0].position < rejections[1].position && rejections[1].position < rejections[2].position, 'in log order')
  const measurements = await http(service, 'GET', `/sensors/${sensor.sensorId}/measurements`, { token: owner.token })
  t.strictSame(measurements.body, [{ revision: 0, creation_timestamp: BASE, measurement: { ok: true } }], 'only the good message became a measurement')

  const first = await http(service, 'GET', `/sensors/${sensor.sensorId}/rejections?limit=1`, { token: owner.token })
  t.strictSame(first.body, rejections.slice(0, 1))
  const rest = await http(service, 'GET', `/sensors/${sensor.sensorId}/rejections?after=${rejections[0].position}`, { token: owner.token })
  t.strictSame(rest.body, rejections.slice(1))
  t.equal((await http(service, 'GET', `/sensors/${sensor.sensorId}/rejections?limit=0`, { token: owner.token })).status, 400)
  const other = await newSensor(service, owner.token, networkId)
  t.strictSame((await http(service, 'GET', `/sensors/${other.sensorId}/rejections`, { token: owner.token })).body, [], 'per sensor')
})

t.test('every sensor GET answers 404 to non-members, exactly as for an unknown sensor', async t => {
  const service = await startService(t)
  const { owner, sensor, stranger } = await world(service)
  const client = await connectSensor(t, service, sensor)
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: BASE, value: { v: 1 } }] })
  await publish(client, `log-messages/${sensor.sensorId}`, { log_messages: [{ severity: 'error', revision: 0, timestamp: BASE, subject: 's' }] })
  await publish(client, `measurements/${sensor.sensorId}`, 'not json')
  for (const suffix of ['', '/measurements', '/logs', '/logs/aggregates', '/rejections']) {
    const own = await http(service, 'GET', `/sensors/${sensor.sensorId}${suffix}`, { token: owner.token })
    t.equal(own.status, 200, `member: GET /sensors/<id>${suffix}`)
    t.ok(suffix === '' || own.body.length === 1, 'and there is something to hide')
    const foreign = await http(service, 'GET', `/sensors/${sensor.sensorId}${suffix}`, { token: stranger.token })
    const unknown = await http(service, 'GET', `/sensors/${randomUUID()}${suffix}`, { token: owner.token })
    t.equal(foreign.status, 404, `non-member: GET /sensors/<id>${suffix}`)
    t.equal(unknown.status, 404, `unknown: GET /sensors/<id>${suffix}`)
    t.strictSame(foreign.body, unknown.body, 'the same body')
  }
})

t.test('configurations/<id>: the latest revision, retained, QoS 1', async t => {
  const service = await startService(t)
  const { owner, networkId } = await world(service)
  const sensor = await newSensor(service, owner.token, networkId, 'configured', { interval: 1 })

  t.test('a sensor subscribing after creation gets revision 0', async t => {
    const other = await newSensor(service, owner.token, networkId, 'fresh', { start: 'here' })
    const client = await connectSensor(t, service, other)
    const messages = inbox(client)
    await client.subscribeAsync(`configurations/${other.sensorId}`, { qos: 1 })
    const first = await messages.next()
    t.strictSame(first, { topic: `configurations/${other.sensorId}`, payload: { revision: 0, configuration: { start: 'here' } }, retain: true, qos: 1 })
  })

  t.test('a sensor subscribing after PUTs gets only the latest, then each new one live', async t => {
    for (const interval of [2, 3]) {
      const response = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner.token, body: { sensor_name: 'configured', network_identifier: networkId, configuration: { interval } } })
      t.equal(response.status, 200)
    }
    const client = await connectSensor(t, service, sensor)
    const messages = inbox(client)
    const granted = await client.subscribeAsync(`configurations/${sensor.sensorId}`, { qos: 1 })
    t.equal(granted[0]?.qos, 1)
    const retained = await messages.next()
    t.strictSame(retained, { topic: `configurations/${sensor.sensorId}`, payload: { revision: 2, configuration: { interval: 3 } }, retain: true, qos: 1 })

    const put = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner.token, body: { sensor_name: 'configured', network_identifier: networkId, configuration: { interval: 4, mode: 'fast' } } })
    t.equal(put.body.revision, 3)
    const live = await messages.next()
    t.strictSame(live.payload, { revision: 3, configuration: { interval: 4, mode: 'fast' } }, 'the new revision is pushed to a connected sensor')
    t.equal(live.qos, 1)
    t.equal(messages.pending, 0, 'no stale revision was delivered in between')

    // a sensor reconnecting later gets revision 3, not any earlier one
    const later = await connectSensor(t, service, sensor, { clientId: `later-${sensor.sensorId.slice(0, 8)}` })
    const laterMessages = inbox(later)
    await later.subscribeAsync(`configurations/${sensor.sensorId}`, { qos: 1 })
    t.strictSame((await laterMessages.next()).payload, { revision: 3, configuration: { interval: 4, mode: 'fast' } })
  })
})

t.test('heartbeats acknowledge a configuration revision: the first one wins', async t => {
  const service = await startService(t)
  const { owner, networkId, sensor } = await world(service)
  const client = await connectSensor(t, service, sensor)
  const read = async () => (await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: owner.token })).body
  const listed = async () => (await http(service, 'GET', `/networks/${networkId}/sensors`, { token: owner.token })).body[0]
  const heartbeat = (revision: number, timestamp: number, success: boolean) =>
    publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision, timestamp, success }] })

  t.match(await read(), { revision: 0, acknowledged_at: null, success: null })
  const name = (await read()).sensor_name
  const put = (configuration: Record<string, unknown>) => http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: owner.token, body: { sensor_name: name, network_identifier: networkId, configuration }
  })
  t.equal((await put({ v: 1 })).body.revision, 1)

  // a heartbeat for the old revision 0 acknowledges revision 0, not the current one
  await heartbeat(0, BASE + 1.25, true)
  t.match(await read(), { revision: 1, acknowledged_at: null, success: null })

  await heartbeat(1, BASE + 2.5, false)
  t.match(await read(), { revision: 1, acknowledged_at: BASE + 2.5, success: false }, 'the first heartbeat for revision 1 acknowledges it')
  t.match(await listed(), { sensor_identifier: sensor.sensorId, revision: 1, acknowledged_at: BASE + 2.5, success: false })

  await heartbeat(1, BASE + 3.75, true)
  await publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision: 1, timestamp: BASE + 4, success: true }, { revision: 1, timestamp: BASE + 5, success: true }] })
  t.match(await read(), { revision: 1, acknowledged_at: BASE + 2.5, success: false }, 'later heartbeats change nothing')

  t.equal((await put({ v: 2 })).body.revision, 2)
  t.match(await read(), { revision: 2, acknowledged_at: null, success: null }, 'a new revision starts unacknowledged')
  // in one batch: the first heartbeat for revision 2 wins over the second
  await publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision: 2, timestamp: BASE + 6, success: true }, { revision: 2, timestamp: BASE + 7, success: false }] })
  t.match(await read(), { revision: 2, acknowledged_at: BASE + 6, success: true })
  t.match(await listed(), { revision: 2, acknowledged_at: BASE + 6, success: true })

  const acknowledgements = await http(service, 'GET', `/api/v1/events?stream=sensor-${sensor.sensorId}&type=ConfigurationAcknowledged`, { token: owner.token })
  t.strictSame(acknowledgements.body.events.map((e: { data: unknown }) => e.data), [
    { sensor_identifier: sensor.sensorId, revision: 0, success: true, acknowledged_at: BASE + 1.25 },
    { sensor_identifier: sensor.sensorId, revision: 1, success: false, acknowledged_at: BASE + 2.5 },
    { sensor_identifier: sensor.sensorId, revision: 2, success: true, acknowledged_at: BASE + 6 }
  ], 'one acknowledgement per revision in the log')
})
