import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { Detail } from '../http/schemas.ts'
import { verifyChainInSteps } from '../store/verify.ts'
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
        /** With order=desc, pages go back from the newest: `before` is the last page's smallest position. */
        before: z.coerce.number().int().min(1).optional(),
        order: z.enum(['asc', 'desc']).default('asc'),
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
    return { events, next_after: request.query.order === 'asc' ? events.at(-1)?.position ?? request.query.after : request.query.after }
  })

  // The hash chain of the whole log, as `devicelog verify` walks it: the console shows the result.
  app.get('/api/v1/verify', {
    onRequest: app.requireUser,
    schema: {
      response: {
        200: z.object({ ok: z.boolean(), count: z.number().optional(), head: z.string().optional(), position: z.number().optional(), reason: z.string().optional() }),
        401: Detail
      }
    }
  }, async () => verifyChainInSteps(app.store.db))
}

export default auditRoutes
