import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import rateLimit from '@fastify/rate-limit'
import fastifyStatic from '@fastify/static'
import websocket from '@fastify/websocket'
import type { FastifyInstance, FastifyError } from 'fastify'
import fp from 'fastify-plugin'
import { hasZodFastifySchemaValidationErrors, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import authentication from './accounts/authentication.ts'
import accountRoutes from './accounts/routes.ts'
import checkpoints from './audit/checkpoints.ts'
import auditRoutes from './audit/routes.ts'
import broker from './broker/plugin.ts'
import type { Clock, Timer } from './clock.ts'
import type { Config } from './config.ts'
import chargers from './chargers/index.ts'
import devicesApi from './devices/api.ts'
import devices from './devices/plugin.ts'
import docs from './docs/plugin.ts'
import { ReadOnlyLog, TooManyRequests } from './errors.ts'
import homeAssistant from './home-assistant/plugin.ts'
import hosts from './hosts/index.ts'
import irrigation from './irrigation/index.ts'
import { deviceKinds, identityKinds } from './kinds.ts'
import metrics from './metrics/plugin.ts'
import sensors from './sensors/index.ts'
import sockets from './sockets/index.ts'
import { checkpointKeyPath } from './store/checkpoints.ts'
import store from './store/plugin.ts'
import timerOwner from './store/timer-owner.ts'

export interface AppOptions {
  config: Config
  clock: Clock
}

/**
 * The whole service as one Fastify plugin: the log, the broker, every capability and its routes.
 * server.ts runs it; tests build it on a temporary database.
 */
async function app (instance: FastifyInstance, { config, clock: givenClock }: AppOptions) {
  const app = instance.withTypeProvider<ZodTypeProvider>()
  // A read-only copy is the past: nothing falls due in it, so no timer fires (a stop, a resend, a callback, a checkpoint).
  const clock = config.READ_ONLY ? stillClock(givenClock) : givenClock
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)

  // Errors: one catalogue (errors.ts), one handler. 5xx details stay in the log.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const detail = error.validation.map(issue => `${issue.instancePath || '(root)'} ${issue.message}`).join('; ')
      return reply.code(400).send({ detail: `${error.validationContext}: ${detail}` })
    }
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
    // The log's 503 names its cause (disk full, read-only) for the client; the store logs the episode once.
    if (error.code === 'DL_STORE_UNAVAILABLE') return reply.code(503).send({ detail: error.message })
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
      return reply.code(status).send({ detail: 'internal server error' })
    }
    return reply.code(status).send({ detail: error.message })
  })
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ detail: `no route ${request.method} ${request.url.split('?')[0]}` }))

  // First: every route registered after it is documented (and WebSocket routes before @fastify/websocket hides them).
  await app.register(docs, { readOnly: config.READ_ONLY, mqttPort: () => app.broker.port ?? config.MQTT_PORT })

  // The writer thread imports the read models itself: functions do not cross threads.
  const projections = { module: new URL('./projections.ts', import.meta.url), export: 'allProjections' }
  await app.register(store, { path: config.DATABASE_PATH, projections, clock, maxGroup: config.GROUP_COMMIT_MAX, readOnly: config.READ_ONLY, postgresUrl: config.DATABASE_URL })
  await app.register(timerOwner, { postgresUrl: config.DATABASE_URL, leaseSeconds: config.TIMER_LEASE_SECONDS })
  await app.register(checkpoints, { keyPath: checkpointKeyPath(config.DATABASE_PATH), intervalHours: config.CHECKPOINT_INTERVAL_HOURS })
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } })
  if (config.READ_ONLY) {
    // Before any route's own hooks (a write is refused before it is authenticated or read), but
    // after the WebSocket plugin's, which closes the socket of an upgrade answered with an error.
    app.addHook('onRequest', async (request, reply) => {
      if (DEVICE_CONNECTIONS.has(request.routeOptions.url ?? '')) throw new ReadOnlyLog()
      if (!READS.has(request.method) && request.routeOptions.config.servedReadOnly !== true) {
        reply.header('allow', 'GET, HEAD')
        throw new ReadOnlyLog()
      }
    })
  }
  // After the WebSocket plugin and before every route: it counts the WebSockets and event streams they open.
  await app.register(metrics, { token: config.METRICS_TOKEN })
  await app.register(devices, { kinds: deviceKinds, identities: identityKinds })
  await app.register(broker, {
    maxRefusalsPerMinute: config.MQTT_MAX_REFUSALS_PER_MINUTE,
    maxAuthFailuresPerMinute: config.MQTT_MAX_AUTH_FAILURES_PER_MINUTE,
    authBlockSeconds: config.MQTT_AUTH_BLOCK_SECONDS,
    observer: app.metrics.broker,
    redisUrl: config.REDIS_URL,
    trustProxy: config.TRUST_PROXY
  })
  await app.register(authentication)
  // Only the routes that opt in (`onRequest: app.rateLimit(...)`) are limited, per address; the 429 is a catalogue error.
  await app.register(rateLimit, { global: false, errorResponseBuilder: (_request, context) => new TooManyRequests(context.after) })

  const startedAt = clock.now() / 1000
  app.get('/status', {
    schema: {
      security: [],
      response: {
        200: z.object({
          environment: z.string(),
          commit_sha: z.string(),
          branch_name: z.string(),
          start_timestamp: z.number(),
          // Beside the reference's fields: whether the log can record now, and if not why and since when.
          store: z.object({ status: z.enum(['ok', 'degraded', 'read_only']), cause: z.string().optional(), since: z.string().optional() })
        })
      }
    }
  }, async () => ({ environment: config.ENVIRONMENT, commit_sha: config.COMMIT_SHA, branch_name: config.BRANCH_NAME, start_timestamp: startedAt, store: app.store.health }))

  // Where devices connect: the console shows it beside a new device's credentials.
  app.get('/api/v1/broker', {
    onRequest: app.requireUser,
    schema: { response: { 200: z.object({ mqtt_port: z.number(), websocket_path: z.string() }) } }
  }, async () => ({ mqtt_port: app.broker.port ?? config.MQTT_PORT, websocket_path: '/mqtt' }))

  await app.register(accountRoutes, { maxFailedLogins: config.MAX_FAILED_LOGINS_PER_MINUTE, signup: config.SIGNUP, signupsPerMinute: config.SIGNUP_MAX_PER_MINUTE })
  await app.register(auditRoutes, { feedPerMinute: config.AUDIT_MAX_PER_MINUTE, verifyPerMinute: config.VERIFY_MAX_PER_MINUTE })
  // Before the capabilities: each declares how its devices appear in Home Assistant.
  await app.register(homeAssistant, { enabled: config.HA_DISCOVERY, prefix: config.HA_DISCOVERY_PREFIX, tasmota: config.HA_TASMOTA, version: config.COMMIT_SHA })
  await app.register(sensors, { summaryIntervalSeconds: config.STREAM_SUMMARY_INTERVAL_SECONDS })
  await app.register(sockets, { replyTimeoutMs: config.SOCKET_REPLY_TIMEOUT_MS, resendMs: config.SOCKET_RESEND_SECONDS * 1000, defaultTopic: config.SOCKET_TOPIC })
  await app.register(irrigation, { defaultZone: config.IRRIGATION_ZONE, rootIsPublic: config.IRRIGATION_PUBLIC })
  await app.register(chargers, { maxRate: config.CHARGER_MAX_RATE, maxRefusalsPerMinute: config.MQTT_MAX_REFUSALS_PER_MINUTE })
  await app.register(hosts)
  await app.register(devicesApi)

  // The web console (web/, built by `npm run build`): static files at `/`, on the public APIs only.
  if (existsSync(join(CONSOLE_DIR, 'index.html'))) {
    // wildcard: files are looked up per request, so a rebuild while the service runs is served at once.
    await app.register(fastifyStatic, { root: CONSOLE_DIR, index: 'index.html' })
  } else {
    app.get('/', { schema: { hide: true } }, async (_request, reply) =>
      reply.type('text/plain; charset=utf-8').send('The web console is not built: run `npm run build` (npm start does), then reload.\n'))
  }
}

const CONSOLE_DIR = fileURLToPath(new URL('../dist/web', import.meta.url))

/** READ_ONLY: the methods still served; every other one is a write. */
const READS = new Set(['GET', 'HEAD', 'OPTIONS'])
/** READ_ONLY: the routes devices connect to (MQTT over WebSocket, a charger's socket), refused before the upgrade. */
const DEVICE_CONNECTIONS = new Set(['/mqtt', '/chargers/:id'])

const INERT: Timer = { cancel () {} }
/** The same time, but timers that never fire. */
const stillClock = (clock: Clock): Clock => ({ now: () => clock.now(), setTimeout: () => INERT, setInterval: () => INERT })

// Not encapsulated: server.ts and tests reach the decorators (broker, store) on the root instance.
export default fp(app, { name: 'devicelog' })

export const requestIds = { genReqId: () => randomUUID() }
