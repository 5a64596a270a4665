import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { DeviceNotFound } from '../errors.ts'
import { Detail } from '../http/schemas.ts'
import type { RegisteredDevice, RegistryQueries } from './registry.ts'
import { stateQueries, type Moment } from './state-as-of.ts'

const Errors = { 400: Detail, 401: Detail, 404: Detail }
const Instant = z.iso.datetime({ offset: true })
const MomentQuery = z.object({ at: Instant.optional(), position: z.coerce.number().int().min(0).optional() })
  .refine(q => !(q.at !== undefined && q.position !== undefined), { message: 'give at or position, not both' })
const StateAsOf = z.object({
  device_identifier: z.string(),
  kind: z.string(),
  /** The last event of the device's stream folded, and when it was recorded; null before its first. */
  position: z.number().nullable(),
  recorded_at: z.string().nullable(),
  online: z.boolean(),
  last_seen: z.string().nullable(),
  state: z.unknown()
})
const MAX_CHANGES = 1000

/** A device's state as of any moment, and its changes over a range: its own stream folded with its kind's evolve. */
const deviceStateRoutes: FastifyPluginAsyncZod<{ registry: RegistryQueries }> = async function (app, { registry }) {
  app.addHook('onRequest', app.requireUser)
  const queries = stateQueries(app.store.db)
  const visible = (id: string, userId: string): RegisteredDevice => app.visibleTo(userId, registry.device(id), DeviceNotFound)
  const declarationOf = (device: RegisteredDevice) => {
    const declaration = app.deviceStates.of(device.kind)
    if (declaration === undefined) throw new Error(`no state declared for ${device.kind}`)
    return declaration
  }
  // Now, unless a moment is given.
  const momentOf = (q: { at?: string, position?: number }): Moment =>
    q.position !== undefined ? { position: q.position } : { at: q.at ?? new Date(app.clock.now()).toISOString() }

  app.get('/api/v1/devices/:id/state', {
    schema: { params: z.object({ id: z.string() }), querystring: MomentQuery, response: { 200: StateAsOf, ...Errors } }
  }, async request => {
    const device = visible(request.params.id, request.userId)
    return { device_identifier: device.device_id, kind: device.kind, ...queries.stateAt(declarationOf(device), device.stream_id, momentOf(request.query)) }
  })

  app.get('/api/v1/devices/:id/state/changes', {
    schema: {
      params: z.object({ id: z.string() }),
      querystring: z.object({ from: Instant.optional(), to: Instant.optional(), limit: z.coerce.number().int().min(1).max(MAX_CHANGES).default(MAX_CHANGES) }),
      response: {
        200: z.object({ changes: z.array(z.object({ position: z.number(), recorded_at: z.string(), type: z.string(), state: z.unknown() })) }),
        ...Errors
      }
    }
  }, async request => {
    const device = visible(request.params.id, request.userId)
    const { from, to, limit } = request.query
    const changes = queries.changes(declarationOf(device), device.stream_id, from === undefined ? { position: 0 } : { at: from }, momentOf({ at: to }), limit)
    return { changes }
  })
}

export default deviceStateRoutes
