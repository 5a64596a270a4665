import { createRequire } from 'node:module'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { connectMqtt, createSensor, http, startService, type Service } from './helpers/service.ts'
import { createSocket } from './helpers/sockets.ts'
import { createZone } from './helpers/zones.ts'
import { wsUrl } from './helpers/websocket.ts'

// The APIs describe themselves: OpenAPI at /docs/json (and Swagger UI at /docs), AsyncAPI at
// /docs/asyncapi.json. Checked against the real service: every route it registered is in the
// document, every status it answered is documented (and its body matches the documented schema),
// and every MQTT topic is one the broker really takes, with the payloads it really sends.

const require = createRequire(import.meta.url)
// ajv and the official AsyncAPI schemas are CommonJS.
const Ajv = require('ajv').default as typeof import('ajv').default
const Ajv2020 = require('ajv/dist/2020.js').default as typeof import('ajv/dist/2020.js').default
const addFormats = require('ajv-formats').default as typeof import('ajv-formats').default
const asyncApiSpecs = require('@asyncapi/specs') as { schemas: Record<string, object> }

/** A route as its author registered it (before @fastify/websocket hides the WebSocket ones). */
interface RegisteredRoute {
  methods: string[]
  url: string
  hidden: boolean
  webSocket: boolean
  hasBody: boolean
  statuses: string[]
}

/** The whole service, as startService builds it, with every route it registers recorded. */
async function startObserved (t: Test, options: { dir?: string, env?: Record<string, string> } = {}) {
  const routes: RegisteredRoute[] = []
  const service = await startService(t, {
    ...options,
    before: instance => instance.addHook('onRoute', route => {
      routes.push({
        methods: [route.method].flat(),
        url: route.url,
        hidden: (route.schema as { hide?: boolean } | undefined)?.hide === true,
        webSocket: route.websocket === true,
        hasBody: route.schema?.body !== undefined,
        statuses: Object.keys((route.schema?.response ?? {}) as object)
      })
    })
  })
  return { service, routes: routes.filter(route => !route.methods.every(method => method === 'HEAD')) }
}

const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
const SUCCESS = /^(2\d\d|101)$/

type Operation = { security?: unknown[], responses: Record<string, { description?: string, content?: Record<string, { schema?: object }> }>, description?: string }

// ---------------------------------------------------------------------------------------------
// OpenAPI

t.test('every registered route is in the OpenAPI document, with a response for each status it declares', async t => {
  const { service, routes } = await startObserved(t)
  const { status, body: document } = await http(service, 'GET', '/docs/json')
  t.equal(status, 200)
  t.equal(document.openapi, '3.1.0')

  const visible = routes.filter(route => !route.hidden)
  t.ok(visible.length > 60, `the service registers its routes (${visible.length})`)
  t.ok(visible.some(route => route.webSocket), 'WebSocket routes are among them')
  const documented = new Set<string>()
  for (const route of visible) {
    for (const method of route.methods.filter(method => method !== 'HEAD')) {
      const name = `${method} ${route.url}`
      const operation: Operation | undefined = document.paths[openApiPath(route.url)]?.[method.toLowerCase()]
      if (operation === undefined) {
        t.fail(`${name} is not in the document`)
        continue
      }
      documented.add(`${method.toLowerCase()} ${openApiPath(route.url)}`)
      const statuses = Object.keys(operation.responses)
      for (const declared of route.statuses) t.ok(statuses.includes(declared), `${name}: ${declared} is documented`)
      t.ok(statuses.some(status => SUCCESS.test(status)), `${name}: its success is documented`)
      if (route.webSocket) {
        t.ok(statuses.includes('101'), `${name}: a WebSocket opens with 101`)
        t.match(operation.description, /WebSocket/, `${name}: described as a WebSocket`)
      }
      for (const [status, response] of Object.entries(operation.responses)) {
        t.ok(typeof response.description === 'string' && response.description.length > 2, `${name} ${status}: described`)
        if (status === '101' || status === '204') continue
        const schemas = Object.values(response.content ?? {}).map(media => media.schema)
        t.ok(schemas.length > 0 && schemas.every(schema => schema !== undefined), `${name} ${status}: has a response schema`)
      }
    }
  }
  // Hidden routes stay hidden: MQTT over WebSocket, Swagger UI's own.
  for (const route of routes.filter(route => route.hidden)) {
    t.equal(document.paths[openApiPath(route.url)]?.get, undefined, `${route.url} stays hidden`)
  }
  t.notOk(document.paths['/mqtt'], '/mqtt is not documented')
  // And nothing is documented that the service does not serve.
  const operations = Object.entries(document.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, methods]) => Object.keys(methods).map(method => `${method} ${path}`))
  t.same(operations.filter(operation => !documented.has(operation)), [], 'every documented operation is a registered route')

  // Auth: a bearer token unless a route says otherwise.
  t.same(document.security, [{ bearer: [] }, { access_token: [] }])
  t.same(document.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: document.components.securitySchemes.bearer.description })
  for (const open of ['/status', '/users', '/authentication', '/docs/asyncapi.json']) {
    const method = open === '/status' || open === '/docs/asyncapi.json' ? 'get' : 'post'
    t.same(document.paths[open][method].security, [], `${open} needs no token`)
  }
  t.same(document.paths['/chargers/{id}'].get.security, [{ pair_token: [] }], 'a charger\'s socket takes its pair token')
  t.notOk(document.paths['/sensors'].post.security, '/sensors takes the default, a bearer token')
  t.ok(document.paths['/sensors'].post.responses['401'], '... and documents its 401')
  t.ok(document.paths['/sensors'].post.responses['503'], 'a write documents the log\'s 503')
  t.notOk(document.paths['/sensors'].post.responses['405'], 'no 405 unless READ_ONLY')
  t.same(document.paths['/api/sockets'].post.responses['503'].content['application/json'].schema.required, ['message'],
    'in the socket API\'s own error shape')
  // Examples where cheap.
  t.same(document.paths['/users'].post.requestBody.content['application/json'].example, { username: 'admin', password: '12345678' })
  t.ok(document.paths['/manual'].get.responses['200'].content['text/plain'], 'the reference\'s plain-text answers are documented as text')
  t.ok(document.paths['/streams/{network_identifier}'].get.responses['200'].content['text/event-stream'], 'server-sent events as such')
})

t.test('SIGNUP=closed: POST /users is documented as it answers, a 403 without a token and never a 401', async t => {
  const { service } = await startObserved(t, { env: { SIGNUP: 'closed' } })
  const document = (await probe(service, 'GET', '/docs/json', {})).body
  const signup = document.paths['/users'].post
  t.notOk(signup.security, 'it takes the default, a bearer token')
  t.ok(signup.responses['403'], 'its 403 is documented')
  t.notOk(signup.responses['401'], 'no 401: it never answers one')
  const body = { username: 'newcomer', password: 'long enough' }
  t.equal((await probe(service, 'POST', '/users', { body })).status, 403, 'without a token')
  t.equal((await probe(service, 'POST', '/users', { body, token: 'not-a-token' })).status, 403, 'with a bad one')
  t.ok(document.paths['/sensors'].post.responses['401'], 'other routes keep their 401')
})

/** A request as a client makes it; the status, the media type and the body (not read for an event stream). */
async function probe (service: Service, method: string, path: string, options: { token?: string, body?: unknown }) {
  const headers: Record<string, string> = {}
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  const controller = new AbortController()
  const response = await fetch(service.url + path, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body), signal: controller.signal })
  const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]!
  if (mediaType === 'text/event-stream') {
    controller.abort()
    return { status: response.status, mediaType, body: undefined }
  }
  const text = await response.text()
  return { status: response.status, mediaType, body: mediaType === 'application/json' && text !== '' ? JSON.parse(text) : text }
}

/** A WebSocket upgrade: 101 when it opens, else the status that refused it. */
function upgrade (service: Service, path: string, token?: string): Promise<number> {
  const ws = new WebSocket(wsUrl(service, path), { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  return new Promise<number>((resolve, reject) => {
    ws.once('upgrade', () => { resolve(101); ws.terminate() })
    ws.once('unexpected-response', (_request, response) => { resolve(response.statusCode ?? 0); response.resume(); ws.terminate() })
    ws.once('error', error => { if (ws.readyState !== ws.CLOSED) reject(error) })
  })
}

t.test('every status the routes answer is documented, and its body matches the documented schema', async t => {
  const { service, routes } = await startObserved(t, { env: { SOCKET_REPLY_TIMEOUT_MS: '200' } })
  const document = (await http(service, 'GET', '/docs/json')).body
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  addFormats(ajv)

  // A member of a network with one device of every kind, and an outsider who is a member of nothing.
  const sensor = await createSensor(service)
  const zone = await createZone(service, { token: sensor.token, networkId: sensor.networkId })
  const socket = await createSocket(service, { token: sensor.token, networkId: sensor.networkId })
  const charger = await http(service, 'POST', '/api/v1/chargers', { token: sensor.token, body: { charger_id: 'c-docs', widget_id: 'w-docs', network_identifier: sensor.networkId } })
  t.equal(charger.status, 201)
  const host = await http(service, 'POST', '/api/v1/devices', { token: sensor.token, body: { name: 'nas', kind: 'host', network_identifier: sensor.networkId } })
  t.equal(host.status, 201)
  const outsider = (await http(service, 'POST', '/users', { body: { username: 'outsider', password: 'correct horse' } })).body.access_token as string

  const unknown = '00000000-0000-4000-8000-000000000000'
  const known = (name: string, url: string): string => {
    if (url.startsWith('/chargers/')) return 'c-docs'
    if (url.startsWith('/widgets/')) return 'w-docs'
    return ({
      sensor_identifier: sensor.sensorId, network_identifier: sensor.networkId, network: sensor.networkId, zone: zone.zoneId,
      socket: socket.socketId, charger_id: 'c-docs', id: host.body.id, instanceId: unknown, command: 'stop'
    } as Record<string, string>)[name] ?? unknown
  }
  const fill = (url: string, value: (name: string) => string) => url.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => encodeURIComponent(value(name)))

  let answered = 0
  async function check (route: RegisteredRoute, method: string, who: 'anonymous' | 'outsider' | 'member') {
    const token = who === 'anonymous' ? undefined : who === 'outsider' ? outsider : sensor.token
    const path = fill(route.url, name => who === 'member' ? known(name, route.url) : name === 'command' ? 'stop' : unknown)
    const operation: Operation = document.paths[openApiPath(route.url)][method.toLowerCase()]
    const name = `${who} ${method} ${path}`
    if (route.webSocket) {
      const status = await upgrade(service, path, token)
      t.ok(operation.responses[status], `${name}: ${status} is documented`)
      answered++
      return
    }
    const { status, mediaType, body } = await probe(service, method, path, { token, body: route.hasBody ? {} : undefined })
    answered++
    const documented = operation.responses[status]
    t.ok(documented, `${name}: ${status} is documented`)
    if (documented?.content === undefined) return
    const media = documented.content[mediaType]
    t.ok(media, `${name}: ${status} answers ${mediaType}, as documented`)
    if (mediaType !== 'application/json' || media?.schema === undefined) return
    const valid = ajv.validate(media.schema, body)
    t.ok(valid, `${name}: the ${status} body matches its schema`, { errors: ajv.errors, body })
  }

  const visible = routes.filter(route => !route.hidden && !route.url.startsWith('/docs'))
  const logOut = (route: RegisteredRoute, method: string) => route.url === '/authentication' && method === 'DELETE'
  for (const route of visible) for (const method of route.methods) await check(route, method, 'anonymous')
  for (const route of visible) for (const method of route.methods) if (!logOut(route, method)) await check(route, method, 'outsider')
  // Reads with the member's own devices: the successes (writes succeed in the capabilities' own tests).
  for (const route of visible) if (route.methods.includes('GET')) await check(route, 'GET', 'member')
  // Last, as it revokes the outsider's token.
  for (const route of visible) for (const method of route.methods) if (logOut(route, method)) await check(route, method, 'outsider')
  t.ok(answered > 150, `${answered} answers checked`)
})

t.test('/docs is Swagger UI from the service itself, without a token, also under READ_ONLY', async t => {
  const first = await startObserved(t)
  const page = await probe(first.service, 'GET', '/docs', {})
  t.equal(page.status, 200)
  t.equal(page.mediaType, 'text/html')
  const assets = [...String(page.body).matchAll(/(?:src|href)="([^"]+)"/g)].map(match => match[1]!)
  t.ok(assets.some(asset => asset.endsWith('swagger-ui-bundle.js')), 'the page loads Swagger UI')
  for (const asset of assets) {
    t.notMatch(asset, /^(https?:)?\/\//, `${asset} is not fetched from elsewhere`)
    const fetched = await fetch(new URL(asset, `${first.service.url}/docs`))
    await fetched.arrayBuffer()
    t.equal(fetched.status, 200, `${asset} is served by the service`)
  }
  const initializer = await probe(first.service, 'GET', '/docs/static/swagger-initializer.js', {})
  t.match(initializer.body, /resolveUrl\('\.\/json'\)/, 'the page reads /docs/json')
  t.match(initializer.body, /validatorUrl: null/, 'and asks no outside validator')
  await first.service.close()

  // The same database, served for reading only.
  const readOnly = await startObserved(t, { dir: first.service.dir, env: { READ_ONLY: 'true' } })
  for (const path of ['/docs', '/docs/json', '/docs/asyncapi.json', '/docs/static/swagger-ui-bundle.js']) {
    t.equal((await probe(readOnly.service, 'GET', path, {})).status, 200, `${path} under READ_ONLY`)
  }
  const document = (await http(readOnly.service, 'GET', '/docs/json')).body
  t.ok(document.paths['/sensors'].post.responses['405'], 'writes document their 405')
  t.equal((await http(readOnly.service, 'POST', '/sensors', { body: {} })).status, 405, 'as they answer')
  t.notOk(document.paths['/sensors/{sensor_identifier}'].get.responses['405'], 'reads do not')
})

// ---------------------------------------------------------------------------------------------
// AsyncAPI

type AsyncApi = {
  channels: Record<string, { address: string, parameters?: Record<string, { enum?: string[], examples?: string[] }>, messages: Record<string, { contentType: string, payload: object, examples: Array<{ payload: unknown }> }>, tags: Array<{ name: string }> }>
  operations: Record<string, { action: 'send' | 'receive', channel: { $ref: string }, messages: Array<{ $ref: string }>, bindings: { mqtt: { qos: 0 | 1, retain: boolean } } }>
}

const pointer = (document: unknown, ref: string): unknown => ref.replace(/^#\//, '').split('/')
  .map(part => part.replaceAll('~1', '/').replaceAll('~0', '~'))
  .reduce<any>((node, part) => node?.[part], document)

/** The concrete topics a channel's address stands for, each parameter given by `value` (every value of an enumerated one). */
function concrete (address: string, parameters: AsyncApi['channels'][string]['parameters'], value: (name: string) => string): string[] {
  let topics = [address]
  for (const [name, parameter] of Object.entries(parameters ?? {})) {
    const values = parameter.enum ?? [value(name)]
    topics = topics.flatMap(topic => values.map(v => topic.replace(`{${name}}`, v)))
  }
  return topics
}

/** The address as a pattern: each parameter one topic level's worth (or one of its values). */
const addressPattern = (channel: AsyncApi['channels'][string]) => new RegExp(`^${channel.address.replace(/[.+*?^$()|[\]\\]/g, '\\$&').replace(/\\?\{([^}]+)\\?\}/g,
  (_, name: string) => channel.parameters?.[name]?.enum === undefined ? '[^/]+' : `(?:${channel.parameters[name]!.enum!.join('|')})`)}$`)

t.test('the AsyncAPI document validates against the AsyncAPI 3 schema, and its references resolve', async t => {
  const { service } = await startObserved(t)
  const { status, body: document } = await http(service, 'GET', '/docs/asyncapi.json')
  t.equal(status, 200)
  t.equal(document.asyncapi, '3.0.0')

  // The official schema embeds JSON Schema draft 7 itself: ajv's copy would be a second one.
  const ajv = new Ajv({ strict: false, allErrors: true, meta: false, validateSchema: false })
  addFormats(ajv)
  const validate = ajv.compile(asyncApiSpecs.schemas['3.0.0']!)
  t.ok(validate(document), 'valid AsyncAPI 3.0.0', { errors: validate.errors?.slice(0, 5) })
  // The validator is not vacuous: it refuses what AsyncAPI 3 no longer has.
  const broken = structuredClone(document)
  Object.values(broken.operations as Record<string, { action: string }>)[0]!.action = 'publish'
  t.notOk(validate(broken), 'an operation that "publishes" (AsyncAPI 2) is refused')

  const refs: string[] = []
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk)
    else if (typeof node === 'object' && node !== null) {
      for (const [key, value] of Object.entries(node)) if (key === '$ref' && typeof value === 'string') refs.push(value); else walk(value)
    }
  }
  walk(document)
  t.ok(refs.length > 50)
  for (const ref of new Set(refs)) t.ok(pointer(document, ref) !== undefined, `${ref} resolves`)
  for (const [name, operation] of Object.entries((document as AsyncApi).operations)) {
    for (const message of operation.messages) t.ok(message.$ref.startsWith(`${operation.channel.$ref}/messages/`), `${name}: its message is its channel's`)
  }
  // Every example is a payload its schema takes.
  const payloads = new Ajv({ strict: false, allErrors: true })
  addFormats(payloads)
  for (const [key, channel] of Object.entries((document as AsyncApi).channels)) {
    for (const [name, message] of Object.entries(channel.messages)) {
      t.ok(message.examples.length > 0, `${key} ${name} has an example`)
      for (const example of message.examples) t.ok(payloads.validate(message.payload, example.payload), `${key} ${name}: its example matches`, { errors: payloads.errors })
    }
  }
})

/** The QoS a SUBACK granted; 128 is a refusal (mqtt.js rejects it, with the packet). */
const grantedQos = (client: MqttClient, topic: string): Promise<number | undefined> => client.subscribeAsync(topic, { qos: 1 })
  .then(granted => granted[0]?.qos, (error: { packet?: { granted?: number[] } }) => error.packet?.granted?.[0])

/** What a device of each kind uses, from the reference contracts and stock Tasmota: [kind, action, a concrete topic]. */
const USED: Array<[string, 'send' | 'receive', string]> = [
  ['sensor', 'send', 'heartbeats/S'], ['sensor', 'send', 'measurements/S'], ['sensor', 'send', 'log-messages/S'], ['sensor', 'receive', 'configurations/S'],
  ['zone', 'receive', 'zones/Z/valve'], ['zone', 'send', 'zones/Z/state'],
  ['charger', 'send', 'chargers/C/state-of-charge'],
  ['host', 'send', 'devices/H/system-info'], ['host', 'send', 'devices/H/processes'], ['host', 'send', 'devices/H/network-interfaces'], ['host', 'send', 'devices/H/metrics'],
  ['socket', 'send', 'stat/T/RESULT'], ['socket', 'send', 'stat/T/POWER'], ['socket', 'send', 'stat/T/STATUS'], ['socket', 'send', 'stat/T/STATUS0'],
  ['socket', 'send', 'stat/T/STATUS10'], ['socket', 'send', 'tele/T/SENSOR'], ['socket', 'send', 'tele/T/STATE'], ['socket', 'send', 'tele/T/LWT'],
  ['socket', 'send', 'tele/T/INFO1'], ['socket', 'send', 'tele/T/INFO2'], ['socket', 'send', 'tele/T/INFO3'],
  ['socket', 'send', 'tasmota/discovery/AABBCCDDEEFF/config'], ['socket', 'send', 'tasmota/discovery/AABBCCDDEEFF/sensors'], ['socket', 'send', 'cmnd/T/POWER'],
  ['socket', 'receive', 'cmnd/T/POWER'], ['socket', 'receive', 'cmnd/T/STATUS'], ['socket', 'receive', 'cmnd/tasmotas/POWER'], ['socket', 'receive', 'cmnd/DVES_ABC123_fb/POWER']
]

t.test('the AsyncAPI document lists every topic each kind of device uses, and the broker agrees with every one', async t => {
  const { service } = await startObserved(t)
  const document = (await http(service, 'GET', '/docs/asyncapi.json')).body as AsyncApi
  const operations = Object.values(document.operations).map(operation => ({ ...operation, channel: pointer(document, operation.channel.$ref) as AsyncApi['channels'][string] }))
  for (const [kind, action, topic] of USED) {
    t.ok(operations.some(operation => operation.action === action && operation.channel.tags.some(tag => tag.name === kind) && addressPattern(operation.channel).test(topic)),
      `a ${kind}'s ${action === 'send' ? 'publish to' : 'subscription to'} ${topic} is documented`)
  }
  t.same([...new Set(operations.flatMap(operation => operation.channel.tags.map(tag => tag.name)))].sort(), ['charger', 'host', 'sensor', 'socket', 'zone'])

  // One device of every kind, connected with its own credentials.
  const sensor = await createSensor(service, { configuration: { interval: 5 } })
  const zone = await createZone(service, { token: sensor.token, networkId: sensor.networkId })
  const topicExample = (document.channels['socket.tele.topic.LWT']!.parameters!.topic!.examples ?? [])[0]!
  const socket = await createSocket(service, { token: sensor.token, networkId: sensor.networkId, topic: topicExample })
  const charger = (await http(service, 'POST', '/api/v1/chargers', { token: sensor.token, body: { charger_id: 'c1234', widget_id: 'wABCD', network_identifier: sensor.networkId } })).body
  const host = (await http(service, 'POST', '/api/v1/devices', { token: sensor.token, body: { name: 'nas', kind: 'host', network_identifier: sensor.networkId } })).body
  const tasmotaClientId = 'DVES_ABC123'
  const devices: Record<string, { client: MqttClient, value: (name: string) => string }> = {
    sensor: { client: await connectMqtt(t, service.mqttUrl, { username: sensor.sensorId, password: sensor.password }), value: () => sensor.sensorId },
    zone: { client: await connectMqtt(t, service.mqttUrl, { username: zone.zoneId, password: zone.password }), value: () => zone.zoneId },
    socket: {
      client: await connectMqtt(t, service.mqttUrl, { username: socket.topic, password: socket.password, clientId: tasmotaClientId }),
      value: name => ({ topic: socket.topic, client_id: tasmotaClientId, mac: 'AABBCCDDEEFF', command: 'POWER' } as Record<string, string>)[name] ?? ''
    },
    charger: { client: await connectMqtt(t, service.mqttUrl, { username: charger.mqtt.username, password: charger.mqtt.password }), value: () => 'c1234' },
    host: { client: await connectMqtt(t, service.mqttUrl, { username: host.mqtt.username, password: host.mqtt.password }), value: () => host.id }
  }
  const payloads = new Ajv({ strict: false, allErrors: true })
  addFormats(payloads)

  // What a device receives: each subscription is granted, and each message that arrives is one the document describes.
  const receives = operations.filter(operation => operation.action === 'receive')
  const received: Array<{ kind: string, topic: string, payload: string }> = []
  for (const [kind, device] of Object.entries(devices)) device.client.on('message', (topic, payload) => received.push({ kind, topic, payload: payload.toString() }))
  const firstOf = (kind: string, pattern: RegExp) => new Promise<void>(resolve => {
    const check = (topic: string) => { if (pattern.test(topic)) { devices[kind]!.client.removeListener('message', check); resolve() } }
    devices[kind]!.client.on('message', check)
  })
  const expected = [
    firstOf('sensor', /^configurations\//), // retained, at subscribe
    firstOf('socket', /^cmnd\/[^/]+\/STATUS$/), // asked when it subscribes to its commands
    firstOf('zone', /^zones\/[^/]+\/valve$/) // after a mode change
  ]
  for (const operation of receives) {
    const kind = operation.channel.tags[0]!.name
    for (const topic of concrete(operation.channel.address, operation.channel.parameters, devices[kind]!.value)) {
      t.not(await grantedQos(devices[kind]!.client, topic), 128, `a ${kind} may subscribe to ${topic}`)
    }
  }
  t.equal((await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/manual`, { token: sensor.token })).status, 200)
  await Promise.all(expected)
  for (const message of received) {
    const operation = receives.find(operation => operation.channel.tags[0]!.name === message.kind && addressPattern(operation.channel).test(message.topic))
    if (!t.ok(operation, `${message.topic}, which a ${message.kind} received, is documented`)) continue
    const described = pointer(document, operation!.messages[0]!.$ref) as AsyncApi['channels'][string]['messages'][string]
    const payload = described.contentType === 'text/plain' ? message.payload : JSON.parse(message.payload)
    t.ok(payloads.validate(described.payload, payload), `${message.topic}: ${message.payload} matches its documented payload`, { errors: payloads.errors })
  }

  // What a device publishes: each example, to each topic the address stands for, is taken (PUBACK) and recorded, not refused.
  let published = 0
  for (const operation of operations.filter(operation => operation.action === 'send')) {
    const kind = operation.channel.tags[0]!.name
    const message = pointer(document, operation.messages[0]!.$ref) as AsyncApi['channels'][string]['messages'][string]
    const example = message.examples[0]!.payload
    const body = message.contentType === 'text/plain' ? String(example) : JSON.stringify(example)
    for (const topic of concrete(operation.channel.address, operation.channel.parameters, devices[kind]!.value)) {
      await devices[kind]!.client.publishAsync(topic, body, { qos: 1, retain: operation.bindings.mqtt.retain })
      published++
    }
  }
  t.ok(published >= 25, `${published} documented messages published`)
  const refused = service.app.store.read({ type: 'MessageRejected' }).map(event => {
    const { topic, reason, detail } = event.data as { topic: string, reason: string, detail: string }
    return `${topic}: ${reason} ${detail}`
  })
  t.same(refused, [], 'the broker refused none of the documented messages')
  t.same(service.app.store.read({ type: 'SubscriptionRefused' }).map(event => event.data), [], 'nor any documented subscription')
  const recorded = (stream: string) => service.app.store.read({ stream }).length
  t.ok(recorded(`sensor-${sensor.sensorId}`) > 3, 'the sensor\'s messages are recorded')
  t.ok(recorded(`socket-${socket.socketId}`) > 10, 'the plug\'s messages are recorded')
  t.ok(recorded(`host-${host.id}`) > 4, 'the host\'s messages are recorded')
  t.ok(service.app.store.read({ type: 'StateOfChargeReported' }).length === 1, 'the charger\'s reading is recorded')
  t.ok(service.app.store.read({ type: 'ValveStateReported' }).length === 1, 'the valve\'s report is recorded')

  // And the broker refuses what the document does not list: it is the contract, not a wish list.
  t.equal(await grantedQos(devices.sensor!.client, `configurations/${zone.zoneId}`), 128, 'another device\'s topic is refused')
})
