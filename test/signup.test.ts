import t from 'tap'
import { http, startService, type Service } from './helpers/service.ts'

// Sign-ups: limited per address (SIGNUP_MAX_PER_MINUTE), and closed to strangers with SIGNUP=closed.

let counter = 0
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

const signUp = (service: Service, username = unique('user'), token?: string) =>
  http(service, 'POST', '/users', { token, body: { username, password: 'correct horse' } })

/** The UserRegistered event of a user, as that user's audit feed shows it. */
async function registration (service: Service, token: string, userId: string) {
  const feed = await http(service, 'GET', `/api/v1/events?stream=user-${userId}&type=UserRegistered`, { token })
  if (feed.status !== 200) throw new Error(`GET /api/v1/events: ${feed.status}`)
  return feed.body.events[0]
}

t.test('past SIGNUP_MAX_PER_MINUTE (20) sign-ups from one address in a minute: 429 with Retry-After, as {"detail"}', async t => {
  const service = await startService(t)
  const firstName = unique('first')
  for (let i = 1; i <= 20; i++) {
    const created = await signUp(service, i === 1 ? firstName : unique('user'))
    if (created.status !== 201) t.fail(`sign-up ${i}: ${created.status} ${JSON.stringify(created.body)}`)
  }
  const username = unique('twenty-first')
  const refused = await signUp(service, username)
  t.equal(refused.status, 429)
  t.strictSame(Object.keys(refused.body), ['detail'], "the service's error shape")
  t.match(refused.body.detail, /^too many requests to this route from your address: retry in \d+ (seconds?|minute)$/)
  const retryAfter = Number(refused.headers.get('retry-after'))
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After is whole seconds within the minute (${refused.headers.get('retry-after')})`)
  t.match(refused.headers.get('content-type'), /application\/json/)
  t.equal((await http(service, 'POST', '/authentication', { body: { username, password: 'correct horse' } })).status, 404, 'the refused sign-up created nobody')

  const again = await signUp(service)
  t.equal(again.status, 429, 'still refused within the minute')
  t.equal((await signUp(service, firstName)).status, 429, 'refused before the body is looked at (not 409 for a taken name)')
  const login = await http(service, 'POST', '/authentication', { body: { username: firstName, password: 'correct horse' } })
  t.equal(login.status, 200, 'logging in is not a sign-up: the limit is on POST /users only')
})

t.test('SIGNUP_MAX_PER_MINUTE sets the limit', async t => {
  const service = await startService(t, { env: { SIGNUP_MAX_PER_MINUTE: '2' } })
  t.strictSame([(await signUp(service)).status, (await signUp(service)).status, (await signUp(service)).status], [201, 201, 429])
})

t.test('SIGNUP=open (the default): anyone signs up, and is the actor of their own registration', async t => {
  const service = await startService(t)
  const created = await signUp(service)
  t.equal(created.status, 201)
  const event = await registration(service, created.body.access_token, created.body.user_identifier)
  t.equal(event.metadata.actor, `user:${created.body.user_identifier}`)
})

t.test('SIGNUP=closed: 403 saying how to get an account; an existing user creates one, recorded as its actor', async t => {
  // The first account comes from an open start (the default binds 127.0.0.1), then the service restarts closed.
  const open = await startService(t)
  const admin = await signUp(open, unique('admin'))
  t.equal(admin.status, 201)
  await open.close()
  const service = await startService(t, { dir: open.dir, env: { SIGNUP: 'closed' } })

  const stranger = await signUp(service)
  t.equal(stranger.status, 403)
  t.strictSame(Object.keys(stranger.body), ['detail'])
  t.match(stranger.body.detail, /sign-up is closed/)
  t.match(stranger.body.detail, /ask an existing user/)
  const forged = await signUp(service, unique('forger'), 'f'.repeat(64))
  t.equal(forged.status, 403, 'a token that is no user\'s is no invitation')

  const username = unique('invited')
  const invited = await signUp(service, username, admin.body.access_token)
  t.equal(invited.status, 201)
  t.not(invited.body.user_identifier, admin.body.user_identifier, 'a new account, not the inviter\'s')
  const login = await http(service, 'POST', '/authentication', { body: { username, password: 'correct horse' } })
  t.equal(login.status, 200, 'the created user logs in with the password given')
  t.equal(login.body.user_identifier, invited.body.user_identifier)
  t.equal((await http(service, 'GET', '/networks', { token: login.body.access_token })).status, 200)

  const event = await registration(service, login.body.access_token, invited.body.user_identifier)
  t.equal(event.metadata.actor, `user:${admin.body.user_identifier}`, 'the inviter is the actor')
  t.equal(event.data.username, username)

  t.equal((await signUp(service, username, admin.body.access_token)).status, 409, 'a taken name is still 409')
  t.equal((await signUp(service, unique('by-invited'), login.body.access_token)).status, 201, 'any user may create accounts')
})
