import mqtt from 'mqtt'
import t from 'tap'
import { devicelog, spawnServer } from './helpers/process.ts'
import { createSensor, tempDir, type Service } from './helpers/service.ts'
import { join } from 'node:path'

const asService = (url: string) => ({ url }) as Service

t.test('every acknowledged message survives a SIGKILL right after its PUBACK', async t => {
  const dir = tempDir(t)
  const env = { DATABASE_PATH: join(dir, 'devicelog.db') }
  const first = await spawnServer(t, env)
  const sensor = await createSensor(asService(first.url))
  const client = mqtt.connect(first.mqttUrl, { username: sensor.sensorId, password: sensor.password, reconnectPeriod: 0 })
  t.teardown(() => client.end(true))
  await new Promise(resolve => client.once('connect', resolve))

  // 400 in flight at once; the process dies the moment the 300th acknowledgement arrives,
  // while the rest are still being written.
  const acknowledged = new Set<number>()
  const killed = new Promise<void>(resolve => {
    for (let i = 0; i < 400; i++) {
      const payload = JSON.stringify({ measurements: [{ revision: 0, timestamp: 1_700_000_000 + i, value: { i } }] })
      client.publish(`measurements/${sensor.sensorId}`, payload, { qos: 1 }, error => {
        if (error) return
        acknowledged.add(i)
        if (acknowledged.size === 300) {
          first.child.kill('SIGKILL')
          resolve()
        }
      })
    }
  })
  await killed
  await first.exited
  client.end(true)
  const seen = new Set(acknowledged)
  t.ok(seen.size >= 300)

  const second = await spawnServer(t, env)
  const recorded = new Set<number>()
  for (let after = 0; ;) {
    const response = await fetch(`${second.url}/api/v1/events?type=MeasurementsRecorded&limit=1000&after=${after}`,
      { headers: { authorization: `Bearer ${sensor.token}` } })
    const page = await response.json() as { events: Array<{ data: { measurements: Array<{ value: { i: number } }> } }>, next_after: number }
    if (page.events.length === 0) break
    for (const event of page.events) recorded.add(event.data.measurements[0]!.value.i)
    after = page.next_after
  }
  const lost = [...seen].filter(i => !recorded.has(i))
  t.same(lost, [], `all ${seen.size} acknowledged messages were recorded`)
  second.child.kill('SIGTERM')
  t.equal(await second.exited, 0, 'SIGTERM closes gracefully')
  const verified = await devicelog(['verify', '--database', env.DATABASE_PATH])
  t.match(verified.stdout, /^OK \d+ events/)
})

t.test('a bad setting stops start-up with one line naming it', async t => {
  const dir = tempDir(t)
  const failed = await spawnServer(t, { DATABASE_PATH: join(dir, 'x.db'), MQTT_PORT: 'not-a-port' }).then(() => undefined, (error: Error) => error)
  t.match(failed?.message, /exited \(1\) before listening: devicelog: invalid configuration: MQTT_PORT: .+\n$/)
})
