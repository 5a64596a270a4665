import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { Detail } from '../http/schemas.ts'
import { auditQueries } from './stream-access.ts'

const AuditEvent = z.object({
  position: z.number(), stream_id: z.string(), stream_version: z.number(), type: z.string(), schema_version: z.number(),
  recorded_at: z.string(), data: z.unknown(), metadata: z.unknown(), hash: z.string()
})

/** GET /api/v1/events: the audit feed, keyset by position, limited to what the caller may see. */
const auditRoutes: FastifyPluginAsyncZod = async function (app) {
  const audit = auditQueries(app.store.db)
  app.get('/api/v1/events', {
    onRequest: app.requireUser,
    schema: {
      querystring: z.object({
        after: z.coerce.number().int().min(0).default(0),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        stream: z.string().optional(),
        type: z.string().optional()
      }),
      response: { 200: z.object({ events: z.array(AuditEvent), next_after: z.number() }), 400: Detail, 401: Detail }
    }
  }, async request => {
    const events = audit.eventsFor(request.userId, request.query).map(event =>
      // The scrypt hash is the user's secret even if it cannot be reversed cheaply.
      event.type === 'UserRegistered' ? { ...event, data: { ...event.data, password_hash: '[redacted]' } } : event)
    return { events, next_after: events.at(-1)?.position ?? request.query.after }
  })
}

export default auditRoutes
