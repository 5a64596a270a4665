import { request as httpRequest, type IncomingMessage } from 'node:http'
import { createSensor, http, startService, type Service, type Teardown } from './helpers/service.ts'
import { openWs, upgradeStatus } from './helpers/websocket.ts'
import { testWithin } from './helpers/within.ts'

const test = testWithin(20_000)

// A revoked token (log out, or one that leaked) ends the connections it opened, not only the
// requests it would make next: a WebSocket or an event stream does not stream on.

/** Opens /streams/<network> and resolves with its response, once the first frame has arrived. */
function openEventStream (t: Teardown, service: Service, networkId: string, token: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${service.url}/streams/${networkId}?access_token=${token}`, response => {
      if (response.statusCode !== 200) return reject(new Error(`status ${response.statusCode}`))
      response.once('data', () => resolve(response))
    })
    request.on('error', reject)
    t.teardown(() => request.destroy())
    request.end()
  })
}

const ended = (emitter: NodeJS.EventEmitter, event: string) => new Promise<void>(resolve => emitter.once(event, () => resolve()))

test('revoking a token ends the WebSockets and event streams it opened; another token of the same user keeps its own', async t => {
  const service = await startService(t)
  const user = await http(service, 'POST', '/users', { body: { username: 'two-browsers', password: 'correct horse' } })
  const token = user.body.access_token as string
  const login = await http(service, 'POST', '/authentication', { body: { username: 'two-browsers', password: 'correct horse' } })
  t.equal(login.status, 200)
  const other = login.body.access_token as string
  const sensor = await createSensor(service, { token })

  const channel = await openWs(t, service, `/api/v1/devices/${sensor.sensorId}/ws?access_token=${token}`)
  const audit = await openWs(t, service, `/api/v1/events/ws?access_token=${token}`)
  const stream = await openEventStream(t, service, sensor.networkId, token)
  const kept = await openWs(t, service, `/api/v1/devices/${sensor.sensorId}/ws?access_token=${other}`)
  t.match(await kept.next(), { type: 'connected' })

  const closes = [ended(channel.ws, 'close'), ended(audit.ws, 'close'), ended(stream, 'close')]
  t.equal((await http(service, 'DELETE', '/authentication', { token })).status, 204, 'log out answers as before')
  await Promise.all(closes)
  t.pass('the device channel, the live audit feed and the event stream of the revoked token ended')

  kept.send({ type: 'ping' })
  t.match(await kept.next(), { type: 'pong' }, 'the other token\'s socket is still served')
  t.equal(await upgradeStatus(service, `/api/v1/devices/${sensor.sensorId}/ws?access_token=${token}`), 401, 'and the revoked token opens no new one')
})
