import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Metadata } from '../../events/index.ts'
import { NetworkNotFound, Unauthorized } from '../errors.ts'
import { accountQueries, type AccountQueries } from './projections.ts'
import { sha256 } from './secrets.ts'

declare module 'fastify' {
  interface FastifyInstance {
    accounts: AccountQueries
    /** preHandler: 401 unless the request carries a valid bearer token; sets `request.userId`. */
    requireUser(request: FastifyRequest, reply: FastifyReply): Promise<void>
    /** 404 unless the user is a member of the network: non-members must not learn it exists. */
    requireMember(networkId: string, userId: string): void
  }
  interface FastifyRequest {
    userId: string
  }
}

/**
 * Bearer tokens from the Authorization header, or from `?access_token=` for the clients that
 * cannot set headers (browsers' EventSource and WebSocket).
 */
export function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(header)
    return match?.[1]
  }
  const query = request.query as Record<string, unknown> | undefined
  return typeof query?.access_token === 'string' ? query.access_token : undefined
}

export function userMetadata (request: FastifyRequest): Metadata {
  return { actor: `user:${request.userId}`, correlation_id: String(request.id) }
}

export default fp(async function authenticationPlugin (app) {
  const accounts = accountQueries(app.store.db)
  app.decorate('accounts', accounts)
  app.decorateRequest('userId', '')
  app.decorate('requireUser', async function requireUser (request: FastifyRequest) {
    const token = bearerToken(request)
    const userId = token === undefined ? undefined : accounts.userByTokenHash(sha256(token))
    if (userId === undefined) throw new Unauthorized()
    request.userId = userId
  })
  app.decorate('requireMember', function requireMember (networkId: string, userId: string) {
    if (!accounts.isMember(networkId, userId)) throw new NetworkNotFound()
  })
}, { name: 'authentication', dependencies: ['store'] })
