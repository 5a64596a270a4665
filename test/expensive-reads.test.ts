import { randomUUID } from 'node:crypto'
import { request } from 'node:http'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { http, startService, type Service } from './helpers/service.ts'

// Reads that walk large ranges cannot load the server: concurrent verifies share one walk, and
// the audit feed and verify are limited per address (AUDIT_MAX_PER_MINUTE, VERIFY_MAX_PER_MINUTE).

let counter = 0
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

async function user (service: Service) {
  const created = await http(service, 'POST', '/users', { body: { username: unique('user'), password: 'correct horse' } })
  if (created.status !== 201) throw new Error(`POST /users: ${created.status}`)
  return { token: created.body.access_token as string, userId: created.body.user_identifier as string }
}

/** `count` more events in the log, through the store, in units of 1000. */
async function grow (service: Service, count: number) {
  const userId = randomUUID()
  const metadata = { actor: `user:${userId}`, correlation_id: 'filler' }
  for (let done = 0; done < count; done += 1000) {
    const events = Array.from({ length: Math.min(1000, count - done) }, () =>
      ({ type: 'AuthenticationFailed' as const, data: { user_identifier: userId, reason: 'wrong_password' as const } }))
    await service.app.store.append(`user-${userId}`, events, { metadata })
  }
}

const verify = (service: Service, token: string) => http(service, 'GET', '/api/v1/verify', { token })

/** CPU time (user + system, µs) of this process, which runs the service, while `work` runs. */
async function cpuOf (work: () => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage()
  await work()
  const spent = process.cpuUsage(before)
  return spent.user + spent.system
}

/** A GET from a given local address of the loopback (127.0.0.2 is another client to the service). */
function getFrom (service: Service, localAddress: string, path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${service.url}${path}`, { localAddress, headers: { authorization: `Bearer ${token}` } }, response => {
      response.resume()
      response.on('end', () => resolve(response.statusCode!))
    })
    req.on('error', reject)
    req.end()
  })
}

function assertTooMany (t: Test, response: { status: number, body: any, headers: Headers }, what: string) {
  t.equal(response.status, 429, what)
  t.strictSame(Object.keys(response.body), ['detail'], "the service's error shape")
  t.match(response.body.detail, /^too many requests to this route from your address: retry in /)
  const retryAfter = Number(response.headers.get('retry-after'))
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After is whole seconds within the minute (${response.headers.get('retry-after')})`)
}

t.test('concurrent verifies share one walk; a verify after it ends walks again', async t => {
  const service = await startService(t, { env: { VERIFY_MAX_PER_MINUTE: '100' } })
  const { token } = await user(service)
  await grow(service, 100_000)

  await verify(service, token) // warm: the first walk reads the file into the page cache and compiles
  let alone: any
  const one = await cpuOf(async () => { alone = (await verify(service, token)).body })
  t.match(alone, { ok: true, count: Number, head: /^[0-9a-f]{64}$/ })
  t.ok(alone.count > 100_000)

  let together: any[] = []
  const five = await cpuOf(async () => { together = await Promise.all([1, 2, 3, 4, 5].map(() => verify(service, token))) })
  t.strictSame(together.map(r => r.status), [200, 200, 200, 200, 200])
  t.strictSame(together.map(r => r.body), Array(5).fill(alone), 'the same verdict for all five')
  // The one observable of how many walks ran, without hooks into the service: the process's CPU.
  // Five walks cost five times one (measured: 5.0); a shared walk costs one, plus five requests (1.0).
  t.ok(five < 3 * one, `five concurrent verifies cost the CPU of one walk, not five (${Math.round(five / 1000)} ms against ${Math.round(one / 1000)} ms for one)`)

  await grow(service, 10)
  const after = (await verify(service, token)).body
  t.equal(after.count, alone.count + 10, 'a verify after the walk ended walks the log as it is now')
  t.not(after.head, alone.head)
})

t.test('verify past VERIFY_MAX_PER_MINUTE (6) from one address: 429 with Retry-After', async t => {
  const service = await startService(t)
  const { token } = await user(service)
  const statuses = await Promise.all([1, 2, 3, 4, 5, 6].map(async () => (await verify(service, token)).status))
  t.strictSame(statuses, [200, 200, 200, 200, 200, 200], 'six a minute, concurrent ones too')
  assertTooMany(t, await verify(service, token), 'the seventh')
  t.equal(await getFrom(service, '127.0.0.2', '/api/v1/verify', token), 200, 'another address has its own budget')
  t.equal((await http(service, 'GET', '/api/v1/events', { token })).status, 200, 'the feed has a budget of its own')
})

t.test('the audit feed past AUDIT_MAX_PER_MINUTE (60) from one address: 429 with Retry-After, its WebSocket too', async t => {
  const service = await startService(t)
  const { token } = await user(service)
  for (let i = 1; i <= 60; i++) {
    const page = await http(service, 'GET', '/api/v1/events?limit=1', { token })
    if (page.status !== 200) t.fail(`request ${i}: ${page.status}`)
  }
  assertTooMany(t, await http(service, 'GET', '/api/v1/events', { token }), 'the 61st')
  t.equal((await http(service, 'GET', '/api/v1/events')).status, 401, 'without a token: 401, as before')

  const ws = new WebSocket(`${service.url.replace('http', 'ws')}/api/v1/events/ws?access_token=${token}`)
  const refused = await new Promise<{ status: number, retryAfter: string | undefined, body: string }>((resolve, reject) => {
    ws.once('open', () => reject(new Error('the WebSocket opened past the limit')))
    ws.once('error', reject)
    ws.once('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += String(chunk) })
      response.on('end', () => resolve({ status: response.statusCode!, retryAfter: response.headers['retry-after'] as string | undefined, body }))
    })
  })
  ws.terminate()
  t.equal(refused.status, 429, 'the live feed shares the budget: refused before the upgrade')
  t.ok(Number(refused.retryAfter) >= 1, 'with Retry-After')
  t.strictSame(Object.keys(JSON.parse(refused.body)), ['detail'])

  t.equal(await getFrom(service, '127.0.0.2', '/api/v1/events', token), 200, 'another address has its own budget')
  t.equal((await verify(service, token)).status, 200, 'verify has a budget of its own')
})

t.test('AUDIT_MAX_PER_MINUTE sets the limit', async t => {
  const service = await startService(t, { env: { AUDIT_MAX_PER_MINUTE: '2' } })
  const { token } = await user(service)
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await http(service, 'GET', '/api/v1/events', { token })).status)
  t.strictSame(statuses, [200, 200, 429])
})
