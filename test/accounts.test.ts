import { createHash, randomUUID } from 'node:crypto'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { decideAccount } from '../src/accounts/decider.ts'
import { http, startService, type Service } from './helpers/service.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex')

let counter = 0
const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

async function register (service: Service, username = uniqueName('user'), password = 'correct horse') {
  const response = await http(service, 'POST', '/users', { body: { username, password } })
  if (response.status !== 201) throw new Error(`POST /users: ${response.status} ${JSON.stringify(response.body)}`)
  return { username, password, token: response.body.access_token as string, userId: response.body.user_identifier as string }
}

/** Every event of the caller's audit feed matching the query, across pages. */
async function auditEvents (service: Service, token: string, query: string): Promise<any[]> {
  const response = await http(service, 'GET', `/api/v1/events?limit=1000&${query}`, { token })
  if (response.status !== 200) throw new Error(`GET /api/v1/events: ${response.status}`)
  return response.body.events
}

t.test('GET /status', async t => {
  const clock = new ManualClock(Date.UTC(2026, 2, 3, 4, 5, 6, 789))
  const service = await startService(t, { clock, env: { ENVIRONMENT: 'testing', COMMIT_SHA: 'abc123', BRANCH_NAME: 'feature/x' } })
  const response = await http(service, 'GET', '/status')
  t.equal(response.status, 200)
  t.strictSame(response.body, {
    environment: 'testing',
    commit_sha: 'abc123',
    branch_name: 'feature/x',
    start_timestamp: Date.UTC(2026, 2, 3, 4, 5, 6, 789) / 1000,
    // Ours beside the reference's four: whether the log can record (see test/storage-faults.test.ts).
    store: { status: 'ok' }
  })
  t.match(response.headers.get('content-type'), /application\/json/)

  const defaults = await startService(t)
  const status = await http(defaults, 'GET', '/status')
  t.equal(status.status, 200)
  t.strictSame(Object.keys(status.body).sort(), ['branch_name', 'commit_sha', 'environment', 'start_timestamp', 'store'])
  t.equal(status.body.environment, 'development')
  t.equal(status.body.start_timestamp, Date.UTC(2026, 0, 1) / 1000)
})

t.test('POST /users', async t => {
  const service = await startService(t)

  t.test('201 with a token that works, 409 when the name is taken', async t => {
    const username = uniqueName('alice')
    const created = await http(service, 'POST', '/users', { body: { username, password: '12345678' } })
    t.equal(created.status, 201)
    t.strictSame(Object.keys(created.body).sort(), ['access_token', 'user_identifier'])
    t.match(created.body.user_identifier, UUID)
    t.match(created.body.access_token, /^[0-9a-f]{64}$/)
    const networks = await http(service, 'GET', '/networks', { token: created.body.access_token })
    t.equal(networks.status, 200, 'the token from registration authenticates')
    t.strictSame(networks.body, [])

    const taken = await http(service, 'POST', '/users', { body: { username, password: 'another password' } })
    t.equal(taken.status, 409)
    t.type(taken.body.detail, 'string')
    // the first user's password still works: the second registration changed nothing
    const login = await http(service, 'POST', '/authentication', { body: { username, password: '12345678' } })
    t.equal(login.status, 200)
    t.equal(login.body.user_identifier, created.body.user_identifier)
  })

  t.test('two registrations of one name at the same moment: exactly one wins', async t => {
    const username = uniqueName('race')
    const results = await Promise.all([0, 1, 2].map(i =>
      http(service, 'POST', '/users', { body: { username, password: `password-${i}` } })))
    t.strictSame(results.map(r => r.status).sort(), [201, 409, 409])
  })

  t.test('400 for invalid bodies', async t => {
    const invalid: Array<[string, unknown]> = [
      ['password of 7 characters', { username: uniqueName('short'), password: '1234567' }],
      ['missing password', { username: uniqueName('nopass') }],
      ['missing username', { password: '12345678' }],
      ['empty object', {}],
      ['username a number', { username: 42, password: '12345678' }],
      ['password a number', { username: uniqueName('numpass'), password: 12345678 }],
      ['empty username', { username: '', password: '12345678' }],
      ['an array', [{ username: uniqueName('array'), password: '12345678' }]]
    ]
    for (const [what, body] of invalid) {
      const response = await http(service, 'POST', '/users', { body })
      t.equal(response.status, 400, what)
      t.type(response.body?.detail, 'string', `${what}: {detail}`)
    }
    const notJson = await fetch(`${service.url}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"username":' })
    t.equal(notJson.status, 400, 'malformed JSON')
    t.type(((await notJson.json()) as { detail: unknown }).detail, 'string')
    const noBody = await fetch(`${service.url}/users`, { method: 'POST' })
    t.equal(noBody.status, 400, 'no body')

    // exactly 8 characters is enough, and nothing invalid above was registered
    t.equal((await http(service, 'POST', '/users', { body: { username: uniqueName('eight'), password: '12345678' } })).status, 201)
    const short = await http(service, 'POST', '/authentication', { body: { username: (invalid[0]![1] as { username: string }).username, password: '1234567' } })
    t.equal(short.status, 404, 'the user with the short password does not exist')
  })

  t.test('neither the password nor the token is stored', async t => {
    const user = await register(service, uniqueName('secret'), 'a very particular passphrase')
    const everything = JSON.stringify(service.app.store.read())
    t.notOk(everything.includes(user.password), 'no password in the log')
    t.notOk(everything.includes(user.token), 'no token in the log')
    t.ok(everything.includes(sha256(user.token)), 'the token is stored as its SHA-256')
    const registered = await auditEvents(service, user.token, `stream=user-${user.userId}&type=UserRegistered`)
    t.equal(registered.length, 1)
    t.equal(registered[0].data.username, user.username)
  })
})

t.test('POST /authentication', async t => {
  const service = await startService(t)
  const user = await register(service)

  t.test('200 with a new token that works; the old one keeps working', async t => {
    const response = await http(service, 'POST', '/authentication', { body: { username: user.username, password: user.password } })
    t.equal(response.status, 200)
    t.strictSame(Object.keys(response.body).sort(), ['access_token', 'user_identifier'])
    t.equal(response.body.user_identifier, user.userId)
    t.match(response.body.access_token, /^[0-9a-f]{64}$/)
    t.not(response.body.access_token, user.token, 'a fresh token')
    const withNew = await http(service, 'POST', '/networks', { token: response.body.access_token, body: { network_name: 'via new token' } })
    t.equal(withNew.status, 201)
    const withOld = await http(service, 'GET', '/networks', { token: user.token })
    t.equal(withOld.status, 200)
    t.strictSame(withOld.body.map((n: { network_name: string }) => n.network_name), ['via new token'], 'both tokens are the same user')
    const issued = await auditEvents(service, user.token, `stream=user-${user.userId}&type=AccessTokenIssued`)
    t.strictSame(issued.map(e => e.data.token_sha256), [sha256(user.token), sha256(response.body.access_token)])
  })

  t.test('404 for an unknown user', async t => {
    const response = await http(service, 'POST', '/authentication', { body: { username: uniqueName('nobody'), password: user.password } })
    t.equal(response.status, 404)
    t.type(response.body.detail, 'string')
  })

  t.test('401 for a wrong password, recorded as AuthenticationFailed', async t => {
    const before = await auditEvents(service, user.token, `stream=user-${user.userId}&type=AuthenticationFailed`)
    t.strictSame(before, [])
    const response = await http(service, 'POST', '/authentication', { body: { username: user.username, password: 'not the password' } })
    t.equal(response.status, 401)
    t.type(response.body.detail, 'string')
    t.notOk('access_token' in response.body)
    const after = await auditEvents(service, user.token, `stream=user-${user.userId}&type=AuthenticationFailed`)
    t.equal(after.length, 1, 'one failure recorded')
    t.match(after[0], {
      stream_id: `user-${user.userId}`,
      type: 'AuthenticationFailed',
      data: { user_identifier: user.userId, reason: 'wrong_password' },
      metadata: { actor: `user:${user.userId}` }
    })
    t.notOk(JSON.stringify(after[0]).includes('not the password'), 'the wrong password is not recorded')
    // another user does not see it
    const other = await register(service)
    t.strictSame(await auditEvents(service, other.token, 'type=AuthenticationFailed'), [])
  })

  t.test('400 for invalid bodies', async t => {
    for (const body of [{}, { username: user.username }, { password: user.password }, { username: 1, password: user.password }, { username: user.username, password: null }]) {
      const response = await http(service, 'POST', '/authentication', { body })
      t.equal(response.status, 400, JSON.stringify(body))
      t.type(response.body.detail, 'string')
    }
  })
})

t.test('POST /networks and GET /networks', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const alice = await register(service)
  const bob = await register(service)

  const first = await http(service, 'POST', '/networks', { token: alice.token, body: { network_name: 'greenhouse' } })
  t.equal(first.status, 201)
  t.strictSame(Object.keys(first.body), ['network_identifier'])
  t.match(first.body.network_identifier, UUID)
  clock.advance(1000)
  const second = await http(service, 'POST', '/networks', { token: alice.token, body: { network_name: 'cellar' } })
  t.equal(second.status, 201)
  t.not(second.body.network_identifier, first.body.network_identifier)
  // the same name again is a different network
  const again = await http(service, 'POST', '/networks', { token: bob.token, body: { network_name: 'greenhouse' } })
  t.equal(again.status, 201)

  const mine = await http(service, 'GET', '/networks', { token: alice.token })
  t.equal(mine.status, 200)
  t.strictSame(mine.body, [
    { network_identifier: first.body.network_identifier, network_name: 'greenhouse' },
    { network_identifier: second.body.network_identifier, network_name: 'cellar' }
  ], 'the creator is a member of each, in creation order')
  const bobs = await http(service, 'GET', '/networks', { token: bob.token })
  t.strictSame(bobs.body, [{ network_identifier: again.body.network_identifier, network_name: 'greenhouse' }], "another user sees only their own")

  // membership is real: the creator can list the network's sensors, another user gets 404
  t.equal((await http(service, 'GET', `/networks/${first.body.network_identifier}/sensors`, { token: alice.token })).status, 200)
  t.equal((await http(service, 'GET', `/networks/${first.body.network_identifier}/sensors`, { token: bob.token })).status, 404)

  for (const body of [{}, { network_name: '' }, { network_name: 7 }, { network_name: 'x'.repeat(201) }]) {
    const response = await http(service, 'POST', '/networks', { token: alice.token, body })
    t.equal(response.status, 400, JSON.stringify(body).slice(0, 40))
    t.type(response.body.detail, 'string')
  }
  t.equal((await http(service, 'GET', '/networks', { token: alice.token })).body.length, 2, 'nothing invalid was created')
})

t.test('protected routes: 401 without a token or with a bad one', async t => {
  const service = await startService(t)
  const user = await register(service)
  const network = await http(service, 'POST', '/networks', { token: user.token, body: { network_name: 'n' } })
  const networkId = network.body.network_identifier as string
  const sensor = await http(service, 'POST', '/sensors', { token: user.token, body: { sensor_name: 's', network_identifier: networkId, configuration: {} } })
  const sensorId = sensor.body.sensor_identifier as string
  const sensorBody = { sensor_name: 's', network_identifier: networkId, configuration: {} }

  const routes: Array<[string, string, unknown?]> = [
    ['GET', '/networks'],
    ['POST', '/networks', { network_name: 'x' }],
    ['GET', `/networks/${networkId}/sensors`],
    ['POST', '/sensors', { ...sensorBody, sensor_name: 'other' }],
    ['PUT', `/sensors/${sensorId}`, sensorBody],
    ['GET', `/sensors/${sensorId}`],
    ['GET', `/sensors/${sensorId}/measurements`],
    ['GET', `/sensors/${sensorId}/logs`],
    ['GET', `/sensors/${sensorId}/logs/aggregates`],
    ['GET', `/sensors/${sensorId}/rejections`],
    ['GET', `/streams/${networkId}`],
    ['GET', '/api/v1/events']
  ]
  const badTokens: Array<[string, Record<string, string>]> = [
    ['no token', {}],
    ['an unknown token', { authorization: `Bearer ${'0'.repeat(64)}` }],
    ['the hash of a real token', { authorization: `Bearer ${sha256(user.token)}` }],
    ['not a bearer scheme', { authorization: `Basic ${user.token}` }],
    ['an empty bearer', { authorization: 'Bearer ' }]
  ]
  for (const [method, path, body] of routes) {
    for (const [what, headers] of badTokens) {
      const response = await fetch(service.url + path, {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body)
      })
      t.equal(response.status, 401, `${method} ${path}: ${what}`)
      t.type(((await response.json()) as { detail: unknown }).detail, 'string')
    }
    const badQuery = await fetch(`${service.url}${path}${path.includes('?') ? '&' : '?'}access_token=${'1'.repeat(64)}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    t.equal(badQuery.status, 401, `${method} ${path}: a bad ?access_token=`)
    await badQuery.body?.cancel()
  }

  // nothing above changed anything: still one network, one sensor at revision 0
  t.strictSame((await http(service, 'GET', '/networks', { token: user.token })).body, [{ network_identifier: networkId, network_name: 'n' }])
  t.match((await http(service, 'GET', `/sensors/${sensorId}`, { token: user.token })).body, { sensor_name: 's', revision: 0 })
  t.equal((await http(service, 'GET', `/sensors/${randomUUID()}`, { token: user.token })).status, 404, 'a good token passes the check')
})

t.test('password guessing: past MAX_FAILED_LOGINS_PER_MINUTE wrong passwords a user\'s logins get 429, recorded, until the minute has passed; it survives a restart', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { MAX_FAILED_LOGINS_PER_MINUTE: '3' } })
  const user = await register(service)
  const other = await register(service)
  const login = (username: string, password: string) => http(service, 'POST', '/authentication', { body: { username, password } })

  for (let i = 1; i <= 3; i++) {
    t.equal((await login(user.username, 'a wrong guess')).status, 401, `wrong password ${i}: 401`)
    clock.advance(10_000)
  }
  const refused = await login(user.username, user.password)
  t.equal(refused.status, 429, 'the fourth attempt is refused, even with the right password')
  t.match(refused.body, { detail: /too many wrong passwords/ })
  t.notOk('access_token' in refused.body)
  t.equal((await login(other.username, other.password)).status, 200, 'another user is not affected')

  const failures = await auditEvents(service, user.token, `stream=user-${user.userId}&type=AuthenticationFailed`)
  t.strictSame(failures.map(e => e.data.reason), ['wrong_password', 'wrong_password', 'wrong_password', 'too_many_attempts'], 'the refusal is recorded too')

  // The first wrong password was 30 s ago; once it is a minute old, one attempt is free again.
  clock.advance(29_000)
  const restarted = await (async () => {
    await service.close()
    return startService(t, { clock, dir: service.dir, env: { MAX_FAILED_LOGINS_PER_MINUTE: '3' } })
  })()
  t.equal((await http(restarted, 'POST', '/authentication', { body: { username: user.username, password: user.password } })).status, 429,
    'a restart does not forget: the count is read from the log')
  clock.advance(1_000)
  t.equal((await http(restarted, 'POST', '/authentication', { body: { username: user.username, password: user.password } })).status, 200,
    'a minute after the first wrong password, the right one opens again')
})

t.test('one name registered twice in the same group: the first is the user, the second a 409 (decided again after the first commits), not a 500', async t => {
  const service = await startService(t)
  const { store, accounts } = service.app
  const register = () => store.handle({
    state: () => ({ usernameTaken: accounts.userByName('twin') !== undefined }),
    decide: decideAccount
  }, `user-${randomUUID()}`, { type: 'RegisterUser', user_identifier: randomUUID(), username: 'twin', password_hash: 'x', token_sha256: randomUUID() }, { actor: 'system' })
  // Queued in one tick: one group, where each reads the name as free.
  const [first, second] = await Promise.allSettled([register(), register()])
  t.equal(first.status, 'fulfilled', 'the first registers')
  t.equal(second.status, 'rejected')
  t.match((second as PromiseRejectedResult).reason, { statusCode: 409 }, 'the second is told the name is taken')
  t.equal(store.read({ type: 'UserRegistered' }).filter(e => e.type === 'UserRegistered' && e.data.username === 'twin').length, 1, 'one user of that name in the log')
})
