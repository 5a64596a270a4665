import { execFile, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import t from 'tap'
import { ManualClock, systemClock } from '../src/clock.ts'
import { startControllerSimulator } from '../src/cli/simulators/valve-controller.ts'
import { cleanEnv, root } from './helpers/process.ts'
import { http, startService, type Service } from './helpers/service.ts'
import { committed } from './helpers/sockets.ts'

// `npm run simulate:irrigation`: the reference's random controller, as an HTTP client of the service.

async function zoneOn (service: Service) {
  const user = await http(service, 'POST', '/users', { body: { username: `gardener-${process.pid}`, password: 'correct horse' } })
  const token = user.body.access_token as string
  const network = await http(service, 'POST', '/networks', { token, body: { network_name: 'garden' } })
  const zone = await http(service, 'POST', '/api/v1/zones', { token, body: { name: 'lawn', network_identifier: network.body.network_identifier } })
  return { token, zoneId: zone.body.zone_identifier as string }
}

t.test('asks for a timer after a random wait between min and max, on the clock it is given', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const { token, zoneId } = await zoneOn(service)
  const answers: Array<{ status: number, body: string }> = []
  let answered: () => void = () => {}
  const controller = startControllerSimulator({
    url: service.url, token, zone: zoneId, minSeconds: 5, maxSeconds: 60, durationSeconds: 30, clock,
    random: () => 0.5, // 5 + 0.5 * 55 = 32.5 s
    onTrigger: answer => { answers.push(answer); answered() }
  })
  t.teardown(() => controller.stop())

  clock.advance(32_499)
  t.same(answers, [], 'nothing before the drawn interval')
  const started = committed(service, e => e.type === 'TimerModeStarted' && e.stream_id === `zone-${zoneId}`)
  const gotAnswer = new Promise<void>(resolve => { answered = resolve })
  clock.advance(1)
  const event = await started
  await gotAnswer
  t.equal(answers[0]!.status, 200)
  t.equal(JSON.parse(answers[0]!.body).mode, 'timer_mode')
  t.equal(event.type === 'TimerModeStarted' && event.data.duration_seconds, 30, 'the requested duration')
  t.match(event.metadata.actor, /^user:/, 'recorded as the token holder')
})

t.test('without a zone it drives the default zone through the reference GET /timer', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { IRRIGATION_PUBLIC: 'true' } })
  const { zoneId } = await zoneOn(service)
  const controller = startControllerSimulator({ url: service.url, token: undefined, zone: undefined, minSeconds: 1, maxSeconds: 1, durationSeconds: undefined, clock })
  t.teardown(() => controller.stop())
  const started = committed(service, e => e.type === 'TimerModeStarted' && e.stream_id === `zone-${zoneId}`)
  await controller.trigger()
  const event = await started
  t.equal(event.type === 'TimerModeStarted' && event.data.duration_seconds, 10, "the zone's own timer_seconds")
  t.match(event.metadata.actor, /^http:/, 'an anonymous caller of the public root routes')
})

t.test('the CLI refuses bad arguments and runs against a live service', async t => {
  const bad = await new Promise<{ code: number | null, stderr: string }>(resolve => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/simulate-irrigation.ts', '--min', '0'], { cwd: root, env: cleanEnv({}) },
      (error, _stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number), stderr }))
  })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--min and --max/)

  const service = await startService(t, { clock: systemClock })
  const { token, zoneId } = await zoneOn(service)
  const started = committed(service, e => e.type === 'TimerModeStarted' && e.stream_id === `zone-${zoneId}`)
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/simulate-irrigation.ts', '--url', service.url, '--token', token,
    '--zone', zoneId, '--min', '0.05', '--max', '0.05'], { cwd: root, env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const line = new Promise<string>(resolve => {
    createInterface({ input: child.stdout }).on('line', l => { if (l.includes('timer requested')) resolve(l) })
  })
  await started
  t.match(await line, /timer requested: 200/)
})
