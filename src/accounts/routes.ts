import { randomUUID } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { SignupClosed, TooManyLoginAttempts, Unauthorized, UserNotFound, WrongPassword } from '../errors.ts'
import { Detail } from '../http/schemas.ts'
import { userMetadata } from './authentication.ts'
import { decideAccount } from './decider.ts'
import { hashPassword, newSecret, passwordMatches, sha256 } from './secrets.ts'

const Credentials = z.object({
  username: z.string().min(1).max(200),
  password: z.string().min(8).max(1024)
})
const Session = z.object({ access_token: z.string(), user_identifier: z.uuid() })
const Network = z.object({ network_identifier: z.uuid(), network_name: z.string() })

export interface AccountRoutesOptions {
  /** MAX_FAILED_LOGINS_PER_MINUTE: past it, a user's logins are refused (429) until the minute has passed. */
  maxFailedLogins: number
  /** SIGNUP: `open`, anyone may POST /users; `closed`, only an existing user (their bearer token) creates accounts. */
  signup: 'open' | 'closed'
  /** SIGNUP_MAX_PER_MINUTE: POST /users a minute from one address; past it, 429. */
  signupsPerMinute: number
}

/** Users, their tokens and their networks: POST /users, POST /authentication, /networks. */
const accountRoutes: FastifyPluginAsyncZod<AccountRoutesOptions> = async function (app, { maxFailedLogins, signup, signupsPerMinute }) {
  const { store, accounts } = app

  // Each sign-up costs a scrypt and grows the log for good: limited per address, before the body is read.
  const signupLimit = app.rateLimit({ max: signupsPerMinute, timeWindow: 60_000 })
  // Closed: the caller must be a user; a missing or bad token is told how to get an account, not just 401.
  const requireInviter = async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      await app.requireUser(request, reply)
    } catch (error) {
      throw error instanceof Unauthorized ? new SignupClosed() : error
    }
  }

  app.post('/users', {
    onRequest: signup === 'closed' ? [signupLimit, requireInviter] : signupLimit,
    // Closed, a missing or bad token is a 403 that says how to get an account, never a 401.
    ...(signup === 'closed' ? { config: { refusesTokenWith: 403 } } : {}),
    schema: {
      // Open: anyone; closed: an existing user's bearer token.
      ...(signup === 'closed' ? {} : { security: [] }),
      body: Credentials.meta({ examples: [{ username: 'admin', password: '12345678' }] }),
      response: { 201: Session, 400: Detail, 403: Detail, 409: Detail, 429: Detail }
    }
  }, async (request, reply) => {
    const { username, password } = request.body
    const token = newSecret()
    const userId = randomUUID()
    const passwordHash = await hashPassword(password)
    // The actor is who created the account: the inviter when sign-up is closed, else the new user.
    const metadata = signup === 'closed' ? userMetadata(request) : { actor: `user:${userId}`, correlation_id: String(request.id) }
    await store.handle({
      state: () => ({ usernameTaken: accounts.userByName(username) !== undefined }),
      decide: decideAccount
    }, `user-${userId}`, { type: 'RegisterUser', user_identifier: userId, username, password_hash: passwordHash, token_sha256: sha256(token) }, metadata)
    return reply.code(201).send({ access_token: token, user_identifier: userId })
  })

  // A read-only copy (READ_ONLY) records nothing: there, failures are counted and tokens held in memory.
  const readOnlyFailures = new Map<string, number[]>()
  app.post('/authentication', {
    config: { servedReadOnly: true },
    schema: {
      security: [],
      body: z.object({ username: z.string(), password: z.string() }).meta({ examples: [{ username: 'admin', password: '12345678' }] }),
      response: { 200: Session, 400: Detail, 401: Detail, 404: Detail, 429: Detail }
    }
  }, async request => {
    const user = accounts.userByName(request.body.username)
    if (user === undefined) throw new UserNotFound()
    const metadata = { actor: `user:${user.user_id}`, correlation_id: String(request.id) }
    const since = app.clock.now() - 60_000
    const failed = async (reason: 'wrong_password' | 'too_many_attempts') => {
      if (!store.readOnly) return store.append(`user-${user.user_id}`, decideAccount({ type: 'RecordFailedAuthentication', user_identifier: user.user_id, reason }), { metadata })
      if (reason === 'wrong_password') readOnlyFailures.set(user.user_id, [...(readOnlyFailures.get(user.user_id) ?? []).filter(at => at > since), app.clock.now()])
    }
    const wrongPasswords = store.readOnly
      ? (readOnlyFailures.get(user.user_id) ?? []).filter(at => at > since).length
      : accounts.wrongPasswordsSince(user.user_id, since)
    // Password guessing is slowed per user, and costs no scrypt once refused.
    if (wrongPasswords >= maxFailedLogins) {
      await failed('too_many_attempts')
      throw new TooManyLoginAttempts()
    }
    if (!await passwordMatches(request.body.password, user.password_hash)) {
      await failed('wrong_password')
      throw new WrongPassword()
    }
    if (store.readOnly) return { access_token: app.readOnlySession(user.user_id), user_identifier: user.user_id }
    const token = newSecret()
    await store.append(`user-${user.user_id}`,
      decideAccount({ type: 'IssueAccessToken', user_identifier: user.user_id, token_sha256: sha256(token) }), { metadata })
    return { access_token: token, user_identifier: user.user_id }
  })

  // Log out: the token the request carries is revoked (others of the same user stay valid).
  app.delete('/authentication', {
    onRequest: app.requireUser,
    schema: { response: { 204: z.null(), 401: Detail } }
  }, async (request, reply) => {
    await store.append(`user-${request.userId}`, decideAccount(
      { type: 'RevokeAccessToken', user_identifier: request.userId, token_sha256: request.tokenSha256 }
    ), { metadata: userMetadata(request) })
    return reply.code(204).send(null)
  })

  app.post('/networks', {
    onRequest: app.requireUser,
    schema: {
      body: z.object({ network_name: z.string().min(1).max(200) }).meta({ examples: [{ network_name: 'greenhouse' }] }),
      response: { 201: Network.pick({ network_identifier: true }), 400: Detail, 401: Detail }
    }
  }, async (request, reply) => {
    const networkId = randomUUID()
    await store.append(`network-${networkId}`, decideAccount(
      { type: 'CreateNetwork', network_identifier: networkId, network_name: request.body.network_name, user_identifier: request.userId }
    ), { expectedVersion: 'no_stream', metadata: userMetadata(request) })
    return reply.code(201).send({ network_identifier: networkId })
  })

  app.get('/networks', {
    onRequest: app.requireUser,
    schema: { response: { 200: z.array(Network), 401: Detail } }
  }, async request => accounts.networksOf(request.userId))
}

export default accountRoutes
