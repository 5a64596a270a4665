import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { Detail } from '../http/schemas.ts'
import { checkCheckpoints, checkExpectedHead, parseHead } from '../store/checkpoints.ts'
import { verifyChainInSteps, type VerifyResult } from '../store/verify.ts'
import { auditView, createAuditLive } from './live.ts'
import { auditQueries } from './stream-access.ts'

const AuditEvent = z.object({
  position: z.number(), stream_id: z.string(), stream_version: z.number(), type: z.string(), schema_version: z.number(),
  recorded_at: z.string(), data: z.unknown(), metadata: z.unknown(), hash: z.string()
})

export interface AuditRoutesOptions {
  /** AUDIT_MAX_PER_MINUTE: requests a minute from one address to the feed and its WebSocket, together; past it, 429. */
  feedPerMinute: number
  /** VERIFY_MAX_PER_MINUTE: GET /api/v1/verify a minute from one address; past it, 429. */
  verifyPerMinute: number
}

/** GET /api/v1/events: the audit feed, keyset by position, limited to what the caller may see; live on its WebSocket. */
const auditRoutes: FastifyPluginAsyncZod<AuditRoutesOptions> = async function (app, { feedPerMinute, verifyPerMinute }) {
  const audit = auditQueries(app.store.db)
  // Reads that walk large ranges are limited per address; one limiter per budget, shared by the routes it names.
  const feedLimit = app.rateLimit({ max: feedPerMinute, timeWindow: 60_000 })
  const verifyLimit = app.rateLimit({ max: verifyPerMinute, timeWindow: 60_000 })
  const live = createAuditLive(app.store, audit)
  app.addHook('preClose', async () => { live.close() })
  app.get('/api/v1/events', {
    onRequest: [app.requireUser, feedLimit],
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
      response: { 200: z.object({ events: z.array(AuditEvent), next_after: z.number() }), 400: Detail, 401: Detail, 429: Detail }
    }
  }, async request => {
    const events = audit.eventsFor(request.userId, request.query).map(auditView)
    return { events, next_after: request.query.order === 'asc' ? events.at(-1)?.position ?? request.query.after : request.query.after }
  })

  // The same feed, pushed as each event commits: `{"type": "event", "data": <event as above>}`. `after`
  // first replays what is visible past it (a reconnecting client misses nothing), by pages of 1000.
  // Authenticated and counted before the upgrade, so a refusal is a plain HTTP 401 (400 for a bad query, 429 past the limit).
  app.get('/api/v1/events/ws', {
    websocket: true,
    onRequest: [app.requireUser, feedLimit],
    schema: {
      description: 'The audit feed live: `{"type": "event", "data": <event as GET /api/v1/events gives it>}` as each visible event commits; ' +
        '`after` first replays what is visible past that position, in order, so a reconnect misses nothing.',
      querystring: z.object({ after: z.coerce.number().int().min(0).optional(), stream: z.string().optional(), type: z.string().optional() }),
      response: { 400: Detail, 401: Detail, 429: Detail }
    }
  }, (socket, request) => {
    live.join(socket, request.userId, request.query)
  })

  // The hash chain of the whole log, as `devicelog verify` walks it: the console shows the result.
  // One walk at a time: a request that comes while one runs gets that walk's verdict; one after it starts anew.
  // Then, on what the walk verified: every signed checkpoint (under this service's key), and the
  // head the caller kept (`?expect=<position>:<hash>`), if any. A broken chain is the whole verdict.
  let walking: Promise<VerifyResult> | undefined
  const verify = () => {
    walking ??= verifyChainInSteps(app.store.db).finally(() => { walking = undefined })
    return walking
  }
  app.get('/api/v1/verify', {
    onRequest: [app.requireUser, verifyLimit],
    schema: {
      querystring: z.object({
        expect: z.string().regex(/^\d+:[0-9a-fA-F]{64}$/, 'a head is <position>:<hash>, the hash 64 hex digits').optional()
      }),
      response: {
        200: z.object({
          ok: z.boolean(),
          count: z.number().optional(),
          head: z.string().optional(),
          /** When not ok: the first position that does not hold, and why. */
          position: z.number().optional(),
          reason: z.string().optional(),
          /** This service's Ed25519 key (raw, base64), which signs the checkpoints. */
          public_key: z.string().optional(),
          checkpoints: z.object({
            holding: z.number(),
            last: z.object({ at: z.number(), head: z.string(), signed_at: z.string() }).optional(),
            keys: z.array(z.string())
          }).optional(),
          /** `?expect=`, which holds when ok. */
          expected: z.string().optional()
        }),
        400: Detail,
        401: Detail,
        429: Detail
      }
    }
  }, async request => {
    const walked = await verify()
    if (!walked.ok) return walked
    const publicKey = app.checkpoints.publicKey
    const { broken, ...checkpoints } = checkCheckpoints(app.store.db, walked.count, publicKey === undefined ? [] : [publicKey])
    const verdict = { ...walked, public_key: publicKey, checkpoints }
    const expected = request.query.expect === undefined ? undefined : parseHead(request.query.expect)!
    if (expected !== undefined) {
      const result = checkExpectedHead(app.store.db, expected, walked.count)
      if (!result.ok) return { ...verdict, ...result }
    }
    if (broken !== undefined) return { ...verdict, ok: false, ...broken }
    return { ...verdict, expected: request.query.expect?.toLowerCase() }
  })
}

export default auditRoutes
