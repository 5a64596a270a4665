import { randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod, ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { bearerToken, userMetadata } from '../accounts/authentication.ts'
import { newSecret, sha256 } from '../accounts/secrets.ts'
import { ZoneNotFound } from '../errors.ts'
import { defaultSecurity } from '../docs/openapi.ts'
import { Detail } from '../http/schemas.ts'
import { decideZone, initialZoneState, type ZoneCommand } from './decider.ts'
import type { ZoneLive } from './live.ts'
import type { ZoneQueries, ZoneRow } from './projections.ts'
import { HistoryEntry, Zone, historyView, zoneView } from './views.ts'
import type { ZoneControl } from './zone-control.ts'

/** Node's timers hold at most 2^31-1 ms (24.8 days). */
const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000)
/** Query strings are text: `?duration=30`. */
const Seconds = z.coerce.number().finite().positive().max(MAX_SECONDS)
const ZoneParams = z.object({ zone: z.string() })
const TimerQuery = z.object({ duration: Seconds.optional() })
const HistoryQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(10) })
const Errors = { 400: Detail, 401: Detail, 404: Detail }

/** The reference's answers to its three GET routes. */
const REFERENCE_TEXT = { manual: 'clock mode starter', timer: 'timer mode starter', stop: 'stop' } as const

export interface IrrigationRoutesOptions {
  zones: ZoneQueries
  control: ZoneControl
  live: ZoneLive
  /** IRRIGATION_ZONE: the zone the reference's root routes drive; unset: the first created. */
  defaultZone: string | undefined
  /** IRRIGATION_PUBLIC: the root routes answer without a bearer token. */
  rootIsPublic: boolean
}

/** `/api/v1/zones/...` for every zone, and the reference's `/manual`, `/timer`, `/stop`, `/history`, `/ws` for one. */
const irrigationRoutes: FastifyPluginAsyncZod<IrrigationRoutesOptions> = async function (app, { zones, control, live, defaultZone, rootIsPublic }) {
  const { accounts } = app
  const presence = (zone: ZoneRow) => app.devices.presence(`zone-${zone.zone_id}`)

  const command = (name: 'manual' | 'timer' | 'stop', durationSeconds?: number): ZoneCommand => {
    const at = app.clock.now()
    if (name === 'manual') return { type: 'StartManual', at }
    if (name === 'timer') return { type: 'StartTimer', at, duration_seconds: durationSeconds ?? null }
    return { type: 'Stop', at }
  }
  const metadataOf = (request: FastifyRequest) =>
    request.userId === '' ? { actor: `http:${request.ip}`, correlation_id: String(request.id) } : userMetadata(request)

  await app.register(async function zonesApi (plugin) {
    const api = plugin.withTypeProvider<ZodTypeProvider>()
    api.addHook('onRequest', app.requireUser)
    const visible = (key: string, userId: string): ZoneRow => {
      return app.visibleTo(userId, zones.zone(key), ZoneNotFound)
    }

    api.post('/api/v1/zones', {
      schema: {
        body: z.object({ name: z.string().min(1).max(200), network_identifier: z.string(), timer_seconds: z.number().finite().positive().max(MAX_SECONDS).default(10) })
          .meta({ examples: [{ name: 'lawn', network_identifier: '0a71a8d8-40c6-4086-a64e-58e38350cb53', timer_seconds: 600 }] }),
        response: { 201: z.object({ zone_identifier: z.string(), mqtt: z.object({ username: z.string(), password: z.string() }) }), ...Errors }
      }
    }, async (request, reply) => {
      const { name, network_identifier, timer_seconds } = request.body
      const zoneId = randomUUID()
      const password = newSecret()
      await app.store.handle({
        state: initialZoneState,
        decide: (command: ZoneCommand, state) => decideZone(command, state, { networkAllowed: accounts.isMember(network_identifier, request.userId) })
      }, `zone-${zoneId}`,
      { type: 'RegisterZone', zone_identifier: zoneId, zone_name: name, network_identifier, timer_seconds, mqtt_password_sha256: sha256(password) },
      userMetadata(request))
      return reply.code(201).send({ zone_identifier: zoneId, mqtt: { username: zoneId, password } })
    })

    api.get('/api/v1/zones', { schema: { response: { 200: z.array(Zone), ...Errors } } },
      async request => zones.zonesOf(request.userId).map(zone => zoneView(zone, presence(zone))))

    api.get('/api/v1/zones/:zone', { schema: { params: ZoneParams, response: { 200: Zone, ...Errors } } }, async request => {
      const zone = visible(request.params.zone, request.userId)
      return zoneView(zone, presence(zone))
    })

    api.post('/api/v1/zones/:zone/:command', {
      schema: {
        params: ZoneParams.extend({ command: z.enum(['manual', 'timer', 'stop']) }),
        querystring: TimerQuery,
        response: { 200: Zone, ...Errors }
      }
    }, async request => {
      const zone = visible(request.params.zone, request.userId)
      await control.decide(zone.zone_id, command(request.params.command, request.query.duration), metadataOf(request))
      const now = zones.zone(zone.zone_id)!
      return zoneView(now, presence(now))
    })

    api.get('/api/v1/zones/:zone/history', { schema: { params: ZoneParams, querystring: HistoryQuery, response: { 200: z.array(HistoryEntry), ...Errors } } },
      async request => zones.history(visible(request.params.zone, request.userId).zone_id, request.query.limit).map(historyView))

    // Browsers cannot set headers on a WebSocket: `?access_token=` is accepted (see authentication.ts).
    // The zone is checked before the upgrade, so a refusal is a plain HTTP 401 or 404.
    api.get('/api/v1/zones/:zone/ws', {
      websocket: true,
      schema: {
        description: 'A zone\'s clock: `{"type": "state", mode, since, to}` on connect and then when it changes; `{"type": "clock", timestamp}` every second.',
        params: ZoneParams,
        response: Errors
      },
      preHandler: async request => { visible(request.params.zone, request.userId) }
    }, (socket, request) => {
      live.joinChannel(visible(request.params.zone, request.userId), socket)
    })
  })

  await app.register(async function referenceRoutes (plugin) {
    const root = plugin.withTypeProvider<ZodTypeProvider>()
    // Public or not, a caller who gives a token is authenticated, so the log names them.
    root.addHook('onRequest', async (request, reply) => {
      if (!rootIsPublic || bearerToken(request) !== undefined) await app.requireUser(request, reply)
    })
    // IRRIGATION_PUBLIC: a token is optional (an empty requirement), else required as everywhere.
    const rootSecurity = rootIsPublic ? { security: [{}, ...defaultSecurity] } : {}
    const defaultZoneOf = (request: FastifyRequest): ZoneRow => {
      const zone = defaultZone === undefined ? zones.first() : zones.find(defaultZone)
      if (zone === undefined) throw new ZoneNotFound()
      if (!rootIsPublic && !accounts.isMember(zone.network_id, request.userId)) throw new ZoneNotFound()
      return zone
    }

    for (const name of ['manual', 'timer', 'stop'] as const) {
      // A GET that records (as the reference's): it can meet the log's 503 too.
      root.get(`/${name}`, {
        schema: { ...rootSecurity, querystring: TimerQuery, response: { 200: { content: { 'text/plain': { schema: z.literal(REFERENCE_TEXT[name]) } } }, ...Errors, 503: Detail } }
      }, async (request, reply) => {
        const zone = defaultZoneOf(request)
        await control.decide(zone.zone_id, command(name, request.query.duration), metadataOf(request))
        return reply.type('text/plain; charset=utf-8').send(REFERENCE_TEXT[name])
      })
    }

    root.get('/history', { schema: { ...rootSecurity, querystring: HistoryQuery, response: { 200: z.array(HistoryEntry), ...Errors } } },
      async request => zones.history(defaultZoneOf(request).zone_id, request.query.limit).map(historyView))

    root.get('/ws', {
      websocket: true,
      schema: { ...rootSecurity, description: 'The reference\'s clock, every second: `{mode, timestamp, since, to}` of the default zone.', response: Errors },
      preHandler: async request => { defaultZoneOf(request) }
    }, (socket, request) => {
      live.joinReference(defaultZoneOf(request), socket)
    })
  })
}

export default irrigationRoutes
