import type { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Metadata } from '../../events/index.ts'
import { NetworkNotFound, Unauthorized } from '../errors.ts'
import { accountQueries, type AccountQueries } from './projections.ts'
import { newSecret, sha256 } from './secrets.ts'

declare module 'fastify' {
  interface FastifyInstance {
    accounts: AccountQueries
    /** preHandler: 401 unless the request carries a valid bearer token; sets `request.userId`. */
    requireUser(request: FastifyRequest, reply: FastifyReply): Promise<void>
    /** 404 unless the user is a member of the network: non-members must not learn it exists. */
    requireMember(networkId: string, userId: string): void
    /** The thing when the user is a member of its network; else `notFound` (a 404: non-members must not learn it exists). */
    visibleTo<T extends { network_id: string }>(userId: string, thing: T | undefined, notFound: new () => Error): T
    /** The request's connection ends when its token is revoked (a WebSocket is ended so by itself). */
    endWhenRevoked(request: FastifyRequest): void
    /**
     * READ_ONLY: a token for a user of the copy, held in memory (the copy records nothing, and an
     * auditor's login is no fact of the past it shows); it ends with the process.
     */
    readOnlySession(userId: string): string
  }
  interface FastifyContextConfig {
    /** A write the service still serves under READ_ONLY (the login: it records nothing there). */
    servedReadOnly?: boolean
    /** The status a missing or bad token gets when it is not 401 (closed sign-up's 403): the OpenAPI document lists that one only. */
    refusesTokenWith?: 403
  }
  interface FastifyRequest {
    userId: string
    /** The SHA-256 of the token that authenticated the request. */
    tokenSha256: string
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
  app.decorateRequest('tokenSha256', '')

  // Connections that outlive their request (WebSockets, server-sent events), by token: a
  // revoked token (log out, a stolen token) ends them instead of letting them stream on.
  const held = new Map<string, Set<Socket>>()
  app.decorate('endWhenRevoked', function endWhenRevoked (request: FastifyRequest) {
    const socket = request.raw.socket
    const sockets = held.get(request.tokenSha256) ?? new Set()
    held.set(request.tokenSha256, sockets.add(socket))
    socket.once('close', () => {
      sockets.delete(socket)
      if (sockets.size === 0 && held.get(request.tokenSha256) === sockets) held.delete(request.tokenSha256)
    })
  })
  const unsubscribe = app.store.subscribe(events => {
    for (const event of events) {
      if (event.type !== 'AccessTokenRevoked') continue
      for (const socket of held.get(event.data.token_sha256) ?? []) socket.destroy()
      held.delete(event.data.token_sha256)
    }
  })
  app.addHook('onClose', async () => unsubscribe())

  const readOnlySessions = new Map<string, string>()
  app.decorate('readOnlySession', function readOnlySession (userId: string): string {
    if (!app.store.readOnly) throw new Error('sessions are held in memory only for a read-only copy')
    const token = newSecret()
    readOnlySessions.set(sha256(token), userId)
    return token
  })

  app.decorate('requireUser', async function requireUser (request: FastifyRequest) {
    const token = bearerToken(request)
    const tokenSha256 = token === undefined ? undefined : sha256(token)
    const userId = tokenSha256 === undefined ? undefined : accounts.userByTokenHash(tokenSha256) ?? readOnlySessions.get(tokenSha256)
    if (userId === undefined || tokenSha256 === undefined) throw new Unauthorized()
    request.userId = userId
    request.tokenSha256 = tokenSha256
    if (request.headers.upgrade?.toLowerCase() === 'websocket') app.endWhenRevoked(request)
  })
  app.decorate('requireMember', function requireMember (networkId: string, userId: string) {
    if (!accounts.isMember(networkId, userId)) throw new NetworkNotFound()
  })
  app.decorate('visibleTo', function visibleTo<T extends { network_id: string }> (userId: string, thing: T | undefined, notFound: new () => Error): T {
    if (thing === undefined || !accounts.isMember(thing.network_id, userId)) throw new notFound()
    return thing
  })
}, { name: 'authentication', dependencies: ['store'] })
