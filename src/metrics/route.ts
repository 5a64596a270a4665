import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import type { Registry } from 'prom-client'
import { z } from 'zod'
import { MetricsNotLocal, Unauthorized } from '../errors.ts'
import { Detail } from '../http/schemas.ts'

export interface MetricsRouteOptions {
  registry: Registry
  /** METRICS_TOKEN: a bearer token of the scraper's own; unset, only the loopback address is answered. */
  token: string | undefined
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/** The caller's address: the TCP peer, or what a trusted balancer (TRUST_PROXY) forwarded; an untrusted X-Forwarded-For is never read. */
const isLoopback = (address: string | undefined): boolean =>
  address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'))

/** GET /metrics: the Prometheus text format of the registry, to the token's holder or to this machine. */
const metricsRoute: FastifyPluginAsyncZod<MetricsRouteOptions> = async function (app, { registry, token }) {
  const expected = token === undefined ? undefined : digest(token)

  async function admit (request: FastifyRequest) {
    if (expected === undefined) {
      if (!isLoopback(request.ip)) throw new MetricsNotLocal()
      return
    }
    const [scheme, given] = (request.headers.authorization ?? '').split(' ')
    // Compared as digests: equal lengths, and no timing that tells how much of the token was right.
    if (scheme?.toLowerCase() !== 'bearer' || given === undefined || !timingSafeEqual(digest(given), expected)) throw new Unauthorized()
  }

  app.get('/metrics', {
    onRequest: admit,
    schema: {
      // METRICS_TOKEN when set; else none, from this machine only.
      security: [{ metrics_token: [] }, {}],
      response: {
        200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: z.string() } } },
        401: Detail,
        403: Detail
      }
    }
  }, async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })
}

export default metricsRoute
