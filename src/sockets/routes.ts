import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { DEFAULT_FULL_TOPIC } from '../../events/sockets.ts'
import { userMetadata } from '../accounts/authentication.ts'
import { sha256 } from '../accounts/secrets.ts'
import { InstanceNotFound, SocketNotFound } from '../errors.ts'
import { decideSocket, initialSocketState, type SocketCommand } from './decider.ts'
import { GROUP_TOPIC } from './mqtt.ts'
import type { PlugControl } from './plug-control.ts'
import type { SocketQueries, SocketRow } from './projections.ts'
import { Instance, ServerData, Socket, instanceView, serverView, socketView } from './views.ts'

/** The reference's error body. */
const Message = z.object({ message: z.string() })
const Errors = { 401: Message, 404: Message, 409: Message, 422: Message, 500: Message }
/** Node's timers hold at most 2^31-1 ms (24.8 days): a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1
const milliseconds = z.coerce.number().finite().positive().max(MAX_TIMER_MS)
const seconds = z.coerce.number().finite().positive().max(Math.floor(MAX_TIMER_MS / 1000))
const InstanceResponse = z.object({ instance: Instance })

export interface SocketRoutesOptions {
  sockets: SocketQueries
  control: PlugControl
  /** SOCKET_TOPIC: the socket the reference's `/api/...` routes drive. */
  defaultTopic: string | undefined
}

/**
 * The smart-socket API: `/api/sockets` to register and list plugs, and the reference's instance
 * routes twice, under `/api/sockets/<socket>/...` for any socket and under `/api/...` for the
 * default one. Errors are `{message}`, bad input 422, as the reference answers.
 */
const socketRoutes: FastifyPluginAsyncZod<SocketRoutesOptions> = async function (app, { sockets, control, defaultTopic }) {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const detail = error.validation.map(issue => `${issue.instancePath || error.validationContext} ${issue.message}`).join('; ')
      return reply.code(422).send({ message: detail })
    }
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
    // Our own errors (DL_*) say what the plug did; anything else stays in the log.
    if (status >= 500 && error.code?.startsWith('DL_') !== true) {
      request.log.error({ err: error }, 'request failed')
      return reply.code(500).send({ message: 'internal server error' })
    }
    return reply.code(status).send({ message: error.message })
  })
  app.addHook('onRequest', app.requireUser)

  const visible = (socket: SocketRow | undefined, userId: string): SocketRow => app.visibleTo(userId, socket, SocketNotFound)

  app.post('/api/sockets', {
    schema: {
      body: z.object({
        name: z.string().min(1).max(200),
        // Tasmota's Topic: at most 32 characters, one topic level, and not the group topic.
        topic: z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/).refine(topic => topic !== GROUP_TOPIC, 'is the group topic'),
        network_identifier: z.string(),
        full_topic: z.string().regex(/^[^#+]*%prefix%[^#+]*$/).refine(t => t.includes('%topic%'), 'must contain %topic%').default(DEFAULT_FULL_TOPIC)
      }).meta({ examples: [{ name: 'kitchen', topic: 'kitchen-plug', network_identifier: '0a71a8d8-40c6-4086-a64e-58e38350cb53' }] }),
      response: { 201: z.object({ socket_identifier: z.string(), topic: z.string(), mqtt: z.object({ username: z.string(), password: z.string() }) }), ...Errors }
    }
  }, async (request, reply) => {
    const { name, topic, network_identifier, full_topic } = request.body
    const socketId = randomUUID()
    // Tasmota's MqttPassword holds 32 characters: 24 random bytes in base64url.
    const password = randomBytes(24).toString('base64url')
    await app.store.handle({
      state: initialSocketState,
      decide: (command: SocketCommand, state) => decideSocket(command, state,
        { networkAllowed: app.accounts.isMember(network_identifier, request.userId), topicTaken: sockets.byTopic(topic) !== undefined || app.devices.credentials(topic) !== undefined })
    }, `socket-${socketId}`,
    { type: 'RegisterSocket', socket_identifier: socketId, socket_name: name, topic, full_topic, network_identifier, mqtt_password_sha256: sha256(password) },
    userMetadata(request))
    return reply.code(201).send({ socket_identifier: socketId, topic, mqtt: { username: topic, password } })
  })

  app.get('/api/sockets', { schema: { response: { 200: z.array(Socket), ...Errors } } },
    async request => sockets.socketsOf(request.userId).map(socket => socketView(sockets, app.devices, socket)))

  app.get('/api/sockets/:socket', { schema: { params: z.object({ socket: z.string() }), response: { 200: Socket, ...Errors } } },
    async request => socketView(sockets, app.devices, visible(sockets.socket(request.params.socket) ?? sockets.byTopic(request.params.socket), request.userId)))

  // Any socket by its identifier or its topic...
  await app.register(instanceRoutes, {
    prefix: '/api/sockets/:socket',
    sockets,
    control,
    resolve: request => {
      const key = (request.params as { socket: string }).socket
      return visible(sockets.socket(key) ?? sockets.byTopic(key), request.userId)
    }
  })
  // ...and the reference's routes, for the default socket.
  await app.register(instanceRoutes, {
    prefix: '/api',
    sockets,
    control,
    resolve: request => visible(defaultTopic === undefined ? sockets.first() : sockets.byTopic(defaultTopic), request.userId)
  })
}

interface InstanceRoutesOptions {
  sockets: SocketQueries
  control: PlugControl
  resolve(request: FastifyRequest): SocketRow
}

/** `*-callback` headers (CPEE-CALLBACK, ...): their URLs, each echoed as `true` in the response. */
function callbacksOf (request: FastifyRequest, reply: FastifyReply): string[] {
  const urls: string[] = []
  for (const [name, value] of Object.entries(request.headers)) {
    if (!name.endsWith('-callback') || typeof value !== 'string') continue
    reply.header(name, 'true')
    if (URL.canParse(value) && /^https?:$/.test(new URL(value).protocol)) urls.push(value)
  }
  return urls
}

const instanceRoutes: FastifyPluginAsyncZod<InstanceRoutesOptions> = async function (app, { sockets, control, resolve }) {
  const { devices } = app
  const SocketParams = z.object({ socket: z.string().optional() })
  const InstanceParams = SocketParams.extend({ instanceId: z.string().optional() })
  const InstanceQuery = z.object({ instanceId: z.string().optional() })
  // The reference's clients send the instance in the path, or as `?instanceId=`.
  const instanceIdOf = (request: { params: { instanceId?: string }, query: { instanceId?: string } }) => {
    const id = request.params.instanceId ?? request.query.instanceId
    if (id === undefined || id === '') throw Object.assign(new Error('instanceId is required'), { statusCode: 422 })
    return id
  }
  const view = (socket: SocketRow, instanceId: string) => {
    const instance = sockets.instance(socket.socket_id, instanceId)
    if (instance === undefined) throw new InstanceNotFound()
    return { instance: instanceView(sockets, instance) }
  }

  const Timeout = z.object({ timeout: milliseconds.optional() }).nullish()
  app.post('/instance', {
    schema: { params: SocketParams, querystring: Timeout, body: Timeout, response: { 200: InstanceResponse, ...Errors } }
  }, async (request, reply) => {
    const socket = resolve(request)
    const timeoutMs = request.body?.timeout ?? request.query?.timeout ?? null
    const id = await control.startInstance(socket, { timeoutMs, durationSeconds: null, callbacks: callbacksOf(request, reply), metadata: userMetadata(request) })
    return view(socket, id)
  })

  const Duration = z.object({ duration: seconds, timeout: milliseconds.optional() })
  app.post('/start-wait-stop', {
    schema: { params: SocketParams, body: Duration.partial().nullish(), querystring: Duration.partial(), response: { 200: InstanceResponse, ...Errors } }
  }, async (request, reply) => {
    const socket = resolve(request)
    const duration = request.body?.duration ?? request.query.duration
    if (duration === undefined) throw Object.assign(new Error('duration is required: a positive number of seconds'), { statusCode: 422 })
    const timeoutMs = request.body?.timeout ?? request.query.timeout ?? null
    const id = await control.startInstance(socket, { timeoutMs, durationSeconds: duration, callbacks: callbacksOf(request, reply), metadata: userMetadata(request) })
    return view(socket, id)
  })

  for (const url of ['/instance', '/instance/:instanceId']) {
    const schema = { params: InstanceParams, querystring: InstanceQuery, response: { 200: InstanceResponse, ...Errors } }
    app.get(url, { schema }, async request => view(resolve(request), instanceIdOf(request)))

    app.put(url, { schema }, async request => {
      const socket = resolve(request)
      const id = instanceIdOf(request)
      await control.stopInstance(socket, id, 'requested', userMetadata(request))
      return view(socket, id)
    })

    app.delete(url, { schema }, async request => {
      const socket = resolve(request)
      const id = instanceIdOf(request)
      await control.stopInstance(socket, id, 'requested', userMetadata(request))
      const stopped = view(socket, id)
      await control.deleteInstance(socket, id, userMetadata(request))
      return stopped
    })
  }

  app.get('/wait', {
    // A GET that records the wait: it can meet the log's 503 too.
    schema: { params: SocketParams, querystring: z.object({ duration: seconds }), response: { 200: z.object({ waiting: z.literal(true) }), ...Errors, 503: Message } }
  }, async (request, reply) => {
    await control.startWait(resolve(request), request.query.duration, callbacksOf(request, reply), userMetadata(request))
    return { waiting: true as const }
  })

  for (const url of ['/emergency-stop', '/emergency-stop/']) {
    app.post(url, {
      schema: { params: SocketParams, response: { 200: z.object({ message: z.string(), stoppedInstances: z.array(z.string()) }), ...Errors } }
    }, async request => {
      const stoppedInstances = await control.emergencyStop(resolve(request), userMetadata(request))
      return { message: 'emergency stop: the socket is off; new instances are refused until PUT /api/recover', stoppedInstances }
    })
  }

  app.put('/recover', { schema: { params: SocketParams, response: { 200: Message, ...Errors } } }, async request => {
    const recovered = await control.recover(resolve(request), userMetadata(request))
    return { message: recovered ? 'recovered: new instances may start' : 'the socket was not emergency-stopped' }
  })

  app.get('/server/status', {
    schema: { params: SocketParams, response: { 200: ServerData.extend({ currentTimestamp: z.string() }), ...Errors } }
  }, async request => ({ ...serverView(sockets, devices, resolve(request)), currentTimestamp: new Date(app.clock.now()).toISOString() }))

  app.get('/download', {
    schema: { params: SocketParams, response: { 200: z.object({ server: ServerData, instances: z.record(z.string(), Instance) }), ...Errors } }
  }, async (request, reply) => {
    const socket = resolve(request)
    const instances = Object.fromEntries(sockets.instances(socket.socket_id).map(row => [row.instance_id, instanceView(sockets, row)]))
    reply.header('content-disposition', 'attachment; filename="server_state.json"')
    return { server: serverView(sockets, devices, socket), instances }
  })
}

export default socketRoutes
