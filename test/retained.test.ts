// The retained messages of the broker's persistence (src/broker/retained.ts), against a real
// Aedes on an ephemeral port and real MQTT clients: every MQTT rule for retained messages, for
// the ones devices publish (kept in a tree of topic levels) and the ones the service owns
// (read from a projection when a client subscribes).
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import mqtt, { type MqttClient } from 'mqtt'
import t from 'tap'
import { DevicePersistence, matchTemplate } from '../src/broker/retained.ts'
import type { Teardown } from './helpers/service.ts'

interface Received { topic: string, payload: string, retain: boolean }

/** A bare Aedes with our persistence; `configurations/+` is owned, read from `configurations`. */
async function startBroker (t: Teardown) {
  const configurations = new Map<string, string>([['a', '{"revision":3}'], ['b', '{"revision":1}']])
  const reads: string[] = []
  const persistence = new DevicePersistence()
  persistence.own({
    topics: 'configurations/+',
    qos: 1,
    one: id => { reads.push(id); return configurations.get(id) },
    all: () => configurations.entries()
  })
  const broker = await Aedes.createBroker({ persistence })
  const server = createServer(broker.handle)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
  const clients: MqttClient[] = []
  t.teardown(async () => {
    await Promise.all(clients.map(client => client.endAsync(true)))
    await new Promise<void>(resolve => broker.close(() => resolve()))
    await new Promise(resolve => server.close(resolve))
  })
  const connect = async () => {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 })
    clients.push(client)
    return client
  }
  let markers = 0
  /**
   * Subscribes a new client to `filter` and returns the retained messages it got: a marker
   * published by the client itself after the SUBACK arrives after every retained one.
   */
  const retainedFor = async (filter: string): Promise<Received[]> => {
    const client = await connect()
    const marker = `marker/${++markers}`
    const received: Received[] = []
    const done = new Promise<void>(resolve => {
      client.on('message', (topic, payload, packet) => {
        if (topic === marker) resolve()
        else received.push({ topic, payload: payload.toString(), retain: packet.retain })
      })
    })
    await client.subscribeAsync([filter, marker], { qos: 1 })
    await client.publishAsync(marker, 'end', { qos: 1 })
    await done
    return received.sort((x, y) => x.topic.localeCompare(y.topic))
  }
  const publisher = await connect()
  const retain = (topic: string, payload: string) => publisher.publishAsync(topic, payload, { qos: 1, retain: true })
  return { broker, url, persistence, configurations, reads, retainedFor, retain }
}

const r = (topic: string, payload: string): Received => ({ topic, payload, retain: true })

t.test('a subscription without wildcards gets the one retained message on its topic', async t => {
  const { retainedFor, retain } = await startBroker(t)
  await retain('tele/plug1/LWT', 'Online')
  await retain('tele/plug2/LWT', 'Offline')
  t.same(await retainedFor('tele/plug1/LWT'), [r('tele/plug1/LWT', 'Online')])
  t.same(await retainedFor('tele/plug3/LWT'), [], 'and none on a topic nobody retained')
  await retain('tele/plug1/LWT', 'Offline')
  t.same(await retainedFor('tele/plug1/LWT'), [r('tele/plug1/LWT', 'Offline')], 'the latest retained message replaces the one before')
})

t.test('+ matches one level, # the rest and the level above it', async t => {
  const { retainedFor, retain } = await startBroker(t)
  await retain('tele', 'root')
  await retain('tele/plug1/LWT', 'Online')
  await retain('tele/plug2/LWT', 'Offline')
  await retain('tele/plug1/STATE', '{"POWER":"ON"}')
  await retain('tele/plug1/sub/deep', 'deep')
  await retain('stat/plug1/POWER', 'ON')
  t.same(await retainedFor('tele/+/LWT'), [r('tele/plug1/LWT', 'Online'), r('tele/plug2/LWT', 'Offline')])
  t.same(await retainedFor('+/plug1/+'), [r('stat/plug1/POWER', 'ON'), r('tele/plug1/LWT', 'Online'), r('tele/plug1/STATE', '{"POWER":"ON"}')])
  t.same(await retainedFor('tele/plug1/#'), [r('tele/plug1/LWT', 'Online'), r('tele/plug1/STATE', '{"POWER":"ON"}'), r('tele/plug1/sub/deep', 'deep')])
  t.same(await retainedFor('tele/#'), [r('tele', 'root'), r('tele/plug1/LWT', 'Online'), r('tele/plug1/STATE', '{"POWER":"ON"}'),
    r('tele/plug1/sub/deep', 'deep'), r('tele/plug2/LWT', 'Offline')], '`tele/#` matches `tele` itself')
  t.same(await retainedFor('tele/+'), [], '+ is exactly one level')
})

t.test('an empty retained payload clears the topic, and only that topic', async t => {
  const { retainedFor, retain } = await startBroker(t)
  await retain('tele/plug1/LWT', 'Online')
  await retain('tele/plug1/LWT/extra', 'below')
  await retain('tele/plug2/LWT', 'Offline')
  await retain('tele/plug2/LWT', '')
  t.same(await retainedFor('tele/+/LWT'), [r('tele/plug1/LWT', 'Online')])
  await retain('tele/plug1/LWT', '')
  t.same(await retainedFor('tele/#'), [r('tele/plug1/LWT/extra', 'below')], 'a cleared topic keeps the ones below it')
  await retain('tele/never/retained', '')
  t.same(await retainedFor('tele/#'), [r('tele/plug1/LWT/extra', 'below')], 'clearing a topic that holds nothing changes nothing')
})

t.test('topics that start with $ match no wildcard at the first level', async t => {
  const { broker, retainedFor, retain } = await startBroker(t)
  await new Promise<void>((resolve, reject) => broker.publish({
    cmd: 'publish', topic: '$devicelog/notice', payload: Buffer.from('internal'), qos: 1, retain: true, dup: false
  }, error => error ? reject(error) : resolve()))
  await retain('visible/notice', 'public')
  t.same(await retainedFor('#'), [r('configurations/a', '{"revision":3}'), r('configurations/b', '{"revision":1}'), r('visible/notice', 'public')])
  t.same(await retainedFor('+/notice'), [r('visible/notice', 'public')])
  t.same(await retainedFor('$devicelog/notice'), [r('$devicelog/notice', 'internal')], 'a subscription that names it gets it')
  t.same(await retainedFor('$devicelog/#'), [r('$devicelog/notice', 'internal')])
})

t.test('the service\'s own retained topics are read from the projection, one keyed read per topic', async t => {
  const { configurations, reads, retainedFor, retain } = await startBroker(t)
  t.same(await retainedFor('configurations/a'), [r('configurations/a', '{"revision":3}')])
  t.same(reads, ['a'], 'an exact subscription reads one id')
  t.same(await retainedFor('configurations/nobody'), [], 'an id the projection does not hold has nothing retained')
  t.same(await retainedFor('configurations/+'), [r('configurations/a', '{"revision":3}'), r('configurations/b', '{"revision":1}')])
  t.same(await retainedFor('+/b'), [r('configurations/b', '{"revision":1}')])

  // What is published there goes to current subscribers; what a later one gets is the projection's.
  await retain('configurations/a', '{"revision":4}')
  t.same(await retainedFor('configurations/a'), [r('configurations/a', '{"revision":3}')], 'a publish is not kept beside the projection')
  configurations.set('a', '{"revision":4}')
  t.same(await retainedFor('configurations/a'), [r('configurations/a', '{"revision":4}')], 'the projection changed, so does the retained message')
  configurations.delete('b')
  t.same(await retainedFor('configurations/#'), [r('configurations/a', '{"revision":4}')], 'a removed device has nothing retained')
  // Deeper topics under an owned prefix are not owned: a device's retained message there is kept.
  await retain('configurations/a/note', 'kept')
  t.same(await retainedFor('configurations/a/#'), [r('configurations/a', '{"revision":4}'), r('configurations/a/note', 'kept')])
})

t.test('a persistent session gets what was queued while it was away; a clean one starts empty', async t => {
  const { url, persistence, retain } = await startBroker(t)
  const session = (clean: boolean) => mqtt.connectAsync(url, { clientId: 'keeper', clean, reconnectPeriod: 0 })
  t.ok(persistence.outgoingEmpty({ id: 'keeper' }), 'nothing was ever queued for it: CONNECT skips the queue')
  const away = await session(false)
  await away.subscribeAsync('news/+', { qos: 1 })
  await away.endAsync()
  await retain('news/1', 'while away')
  t.notOk(persistence.outgoingEmpty({ id: 'keeper' }), 'a message was queued for the session')

  const back = await session(false)
  t.teardown(() => back.endAsync(true))
  const [topic, payload] = await new Promise<[string, string]>(resolve => back.once('message', (topic, payload) => resolve([topic, payload.toString()])))
  t.same([topic, payload], ['news/1', 'while away'], 'it comes when the session is back')
  await back.endAsync()

  await retain('news/2', 'also while away')
  const fresh = await session(true)
  t.teardown(() => fresh.endAsync(true))
  let received = 0
  fresh.on('message', () => { received++ })
  // A round trip of its own: anything queued would have been delivered before its PUBACK.
  await fresh.publishAsync('marker/clean', 'x', { qos: 1 })
  t.equal(received, 0, 'a clean session is not given what the old one had queued')
})

t.test('an owned template matches a subscription as MQTT says', async t => {
  const template = ['zones', '+', 'valve']
  const m = (filter: string) => matchTemplate(filter.split('/'), template)
  t.same(m('zones/z1/valve'), { kind: 'one', id: 'z1' })
  t.same(m('zones/+/valve'), { kind: 'all' })
  t.same(m('zones/#'), { kind: 'all' })
  t.same(m('zones/z1/#'), { kind: 'one', id: 'z1' })
  t.same(m('zones/z1/valve/#'), { kind: 'one', id: 'z1' }, '`x/#` matches x itself')
  t.same(m('#'), { kind: 'all' })
  t.same(m('+/+/+'), { kind: 'all' })
  t.same(m('zones/z1'), { kind: 'none' })
  t.same(m('zones/z1/state'), { kind: 'none' })
  t.same(m('zones/z1/valve/x'), { kind: 'none' })
  t.same(m('zones/+/valve/+'), { kind: 'none' })
})
