import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import WebSocket from 'ws'
import { redactedUrl } from '../src/http/logging.ts'
import { spawnServer } from './helpers/process.ts'

// Tokens in a query string (WebSockets and server-sent events cannot carry a header) never reach
// the request log.

t.test('redactedUrl hides access_token and token, whatever their place, and nothing else', async t => {
  t.equal(redactedUrl('/streams/n?access_token=abc'), '/streams/n?access_token=[redacted]')
  t.equal(redactedUrl('/widgets/w1?x=1&token=abc&y=2'), '/widgets/w1?x=1&token=[redacted]&y=2')
  t.equal(redactedUrl('/ws?ACCESS_TOKEN=abc#f'), '/ws?ACCESS_TOKEN=[redacted]#f')
  t.equal(redactedUrl('/api/v1/events?type=token&stream=s'), '/api/v1/events?type=token&stream=s', 'a value named token is no secret')
  t.equal(redactedUrl('/api/v1/events?mytoken=abc'), '/api/v1/events?mytoken=abc')
})

t.test('the running service logs requests without the tokens in their URL', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'devicelog-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const server = await spawnServer(t, { DATABASE_PATH: join(dir, 'devicelog.db') })

  const secret = 'a-secret-that-must-not-be-logged'
  const response = await fetch(`${server.url}/api/v1/devices?access_token=${secret}`)
  t.equal(response.status, 401, 'the token is refused: it is still a request worth logging')
  const refused = await new Promise<number>(resolve => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/widgets/w1?token=${secret}`)
    ws.on('close', code => resolve(code))
    ws.on('error', () => resolve(-1))
  })
  t.equal(refused, 4404, 'an unknown widget is closed')

  const logged = () => server.lines.filter(line => line.includes('/widgets/w1') || line.includes('/api/v1/devices'))
  while (logged().length < 2) await new Promise(resolve => server.child.stdout!.once('data', resolve))
  t.ok(logged().some(line => line.includes('/api/v1/devices?access_token=[redacted]')), 'the HTTP request is logged, redacted')
  t.ok(logged().some(line => line.includes('/widgets/w1?token=[redacted]')), 'the WebSocket upgrade is logged, redacted')
  t.notOk(server.lines.some(line => line.includes(secret)), 'the secret appears nowhere in the log')
  server.child.kill('SIGTERM')
  await server.exited
})
