import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { Aedes, type AuthenticateError, type Client, type ConnectPacket } from 'aedes'
import mqtt from 'mqtt'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { PlugSimulator, type PlugSimulatorOptions } from '../src/cli/simulators/plug.ts'
import type { Teardown } from './helpers/service.ts'

// The simulated Tasmota plug against a bare Aedes broker on an ephemeral port, watched by an
// ordinary mqtt.js client subscribed to everything. Time moves only with ManualClock.advance.

// Tasmota's Time is local time without a zone; a zone other than UTC shows it is not UTC.
process.env.TZ = 'Europe/Berlin'
const T0_LOCAL = '2026-01-01T01:00:00' // ManualClock's default start, 2026-01-01T00:00:00Z

const ENERGY_KEYS = ['TotalStartTime', 'Total', 'Yesterday', 'Today', 'Period', 'Power', 'ApparentPower', 'ReactivePower', 'Factor', 'Voltage', 'Current']
const BASIC_ENERGY_KEYS = ['Total', 'Today', 'Power', 'ApparentPower', 'ReactivePower', 'Factor', 'Voltage', 'Current']

interface BrokerOptions {
  /** Subscriptions to refuse with SUBACK 0x80, as a strict broker does. */
  refuse?: (topic: string) => boolean
  /** Refuse every CONNECT with "not authorized". */
  refuseConnect?: boolean
}

interface TestBroker {
  url: string
  /** Every CONNECT packet the broker received. */
  connects: ConnectPacket[]
  /** Connected clients by id, to cut one off from the broker's side. */
  clients: Map<string, Client>
}

async function startBroker (t: Teardown, options: BrokerOptions = {}): Promise<TestBroker> {
  const aedes = await Aedes.createBroker()
  const connects: ConnectPacket[] = []
  const clients = new Map<string, Client>()
  aedes.on('client', client => clients.set(client.id, client))
  aedes.preConnect = (_client, packet, done) => {
    connects.push(packet)
    done(null, true)
  }
  aedes.authenticate = (_client, _username, _password, done) => {
    if (options.refuseConnect !== true) return done(null, true)
    const error = new Error('not authorized') as AuthenticateError
    error.returnCode = 5
    done(error, false)
  }
  aedes.authorizeSubscribe = (_client, subscription, done) => done(null, options.refuse?.(subscription.topic) === true ? null : subscription)
  const server = createServer(aedes.handle)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    await new Promise<void>(resolve => aedes.close(() => resolve()))
    await new Promise<void>(resolve => server.close(() => resolve()))
  })
  return { url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, connects, clients }
}

interface Seen { topic: string, payload: string, retain: boolean }

/** An mqtt.js client that records everything published on the broker, in arrival order. */
async function observe (t: Teardown, url: string) {
  const client = await mqtt.connectAsync(url, { clientId: 'observer', reconnectPeriod: 0 })
  t.teardown(() => client.endAsync())
  const seen: Seen[] = []
  const waiters: Array<{ match: (m: Seen) => boolean, from: number, resolve: (m: Seen) => void }> = []
  client.on('message', (topic, payload, packet) => {
    seen.push({ topic, payload: payload.toString('utf8'), retain: packet.retain })
    for (const waiter of [...waiters]) {
      const found = seen.slice(waiter.from).find(waiter.match)
      if (found === undefined) continue
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve(found)
    }
  })
  await client.subscribeAsync(['#', 'tasmota/#'], { qos: 1 })
  return {
    mark: () => seen.length,
    since: (mark: number) => seen.slice(mark),
    /** The first message from `from` on that matches, already seen or still to come. */
    waitFor (match: (m: Seen) => boolean, from: number): Promise<Seen> {
      const found = seen.slice(from).find(match)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise(resolve => waiters.push({ match, from, resolve }))
    },
    send: (topic: string, payload: string) => client.publishAsync(topic, payload, { qos: 1 }).then(() => undefined)
  }
}
type Observer = Awaited<ReturnType<typeof observe>>

const topicIs = (topic: string) => (m: Seen) => m.topic === topic
const pairs = (messages: Seen[]) => messages.map(m => [m.topic, m.payload])

/**
 * Sends a command and waits for the message on `until`; returns what the plug published in
 * between (everything but command topics).
 */
async function exchange (observer: Observer, topic: string, payload: string, until: string): Promise<Seen[]> {
  const mark = observer.mark()
  await observer.send(topic, payload)
  await observer.waitFor(topicIs(until), mark)
  return observer.since(mark).filter(m => !m.topic.startsWith('cmnd/') && !m.topic.includes('/cmnd/'))
}

/** Retained messages as a newly subscribing client gets them. */
async function retained (t: Teardown, url: string, filter: string, count: number): Promise<Seen[]> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 })
  t.teardown(() => client.endAsync())
  const messages: Seen[] = []
  const done = new Promise<void>(resolve => client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload: payload.toString('utf8'), retain: packet.retain })
    if (messages.length === count) resolve()
  }))
  await client.subscribeAsync(filter, { qos: 1 })
  await done
  return messages
}

/** Connects and waits until the observer saw the last message of the connect sequence. */
async function connected (plug: PlugSimulator, observer: Observer): Promise<void> {
  const mark = observer.mark()
  await plug.connect()
  const last = plug.firmware === 'real' ? `tasmota/discovery/${plug.mac}/sensors` : `stat/${plug.topic}/POWER`
  await observer.waitFor(topicIs(last), mark)
}

function plugOn (t: Teardown, url: string, options: Partial<PlugSimulatorOptions> & { topic: string }): PlugSimulator {
  const plug = new PlugSimulator({ url, username: 'plug', password: 'secret', clock: new ManualClock(), ...options })
  t.teardown(() => plug.close())
  return plug
}

t.test('real firmware connects exactly as stock Tasmota 14, INFO only after boot', async t => {
  const broker = await startBroker(t, { refuse: topic => topic === 'cmnd/tasmotas/#' || topic.endsWith('_fb/#') })
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'kitchen', mac: 'A1B2C3D4E5F6', on: true })
  const subacks: Array<[number[], string[]]> = []
  plug.on('subscribed', (granted, topics) => subacks.push([granted, topics]))

  const mark = observer.mark()
  await plug.connect()
  await observer.waitFor(topicIs('tasmota/discovery/A1B2C3D4E5F6/sensors'), mark)

  const connect = broker.connects.find(p => p.clientId === 'DVES_D4E5F6')!
  t.match(connect, { clientId: 'DVES_D4E5F6', clean: true, keepalive: 30, username: 'plug' })
  t.equal(connect.password?.toString(), 'secret')
  t.match({ ...connect.will, payload: connect.will?.payload.toString() }, { topic: 'tele/kitchen/LWT', payload: 'Offline', qos: 1, retain: true })
  t.same(subacks, [[[0], ['cmnd/kitchen/#']], [[128], ['cmnd/tasmotas/#']], [[128], ['cmnd/DVES_D4E5F6_fb/#']]], 'a refused subscription is not an error')

  const sequence = observer.since(mark)
  t.same(sequence.map(m => m.topic), [
    'tele/kitchen/LWT',
    'cmnd/kitchen/POWER',
    'tele/kitchen/INFO1',
    'tele/kitchen/INFO2',
    'tele/kitchen/INFO3',
    'stat/kitchen/RESULT',
    'stat/kitchen/POWER',
    'tasmota/discovery/A1B2C3D4E5F6/config',
    'tasmota/discovery/A1B2C3D4E5F6/sensors'
  ])
  const payloads = sequence.map(m => m.payload)
  t.equal(payloads[0], 'Online')
  t.equal(payloads[1], '', 'the empty POWER command Tasmota sends to its own topic')
  t.equal(payloads[2], '{"Info1":{"Module":"Sonoff Pow R2","Version":"14.3.0(tasmota)","FallbackTopic":"cmnd/DVES_D4E5F6_fb/","GroupTopic":"cmnd/tasmotas/"}}')
  t.equal(payloads[3], '{"Info2":{"WebServerMode":"Admin","Hostname":"kitchen-1526","IPAddress":"192.168.1.50"}}')
  t.equal(payloads[4], '{"Info3":{"RestartReason":"Power On","BootCount":3}}')
  t.equal(payloads[5], '{"POWER":"ON"}')
  t.equal(payloads[6], 'ON')
  t.match(JSON.parse(payloads[7]!), {
    ip: '192.168.1.50',
    dn: 'Simulated Plug',
    fn: ['Simulated Plug', null, null, null, null, null, null, null],
    hn: 'kitchen-1526',
    mac: 'A1B2C3D4E5F6',
    md: 'Sonoff Pow R2',
    ty: 0,
    if: 0,
    ofln: 'Offline',
    onln: 'Online',
    state: ['OFF', 'ON', 'TOGGLE', 'HOLD'],
    sw: '14.3.0',
    t: 'kitchen',
    ft: '%prefix%/%topic%/',
    tp: ['cmnd', 'stat', 'tele'],
    rl: [1, 0, 0, 0, 0, 0, 0, 0],
    ver: 1
  })
  const sensors = JSON.parse(payloads[8]!)
  t.same(Object.keys(sensors), ['sn', 'ver'])
  t.equal(sensors.sn.Time, T0_LOCAL)
  t.same(Object.keys(sensors.sn.ENERGY), ENERGY_KEYS)
  t.match(sensors.sn.ENERGY, { Total: 1, Today: 0, Power: 100, Voltage: 230, Current: 0.435, Factor: 1 })

  const kept = await retained(t, broker.url, 'tele/kitchen/LWT', 1)
  t.same(kept, [{ topic: 'tele/kitchen/LWT', payload: 'Online', retain: true }])
  const discovery = await retained(t, broker.url, 'tasmota/discovery/#', 2)
  t.same(discovery.map(m => [m.topic, m.retain]).sort(), [
    ['tasmota/discovery/A1B2C3D4E5F6/config', true],
    ['tasmota/discovery/A1B2C3D4E5F6/sensors', true]
  ])

  await plug.close()
  const again = observer.mark()
  await plug.connect()
  await observer.waitFor(topicIs('tasmota/discovery/A1B2C3D4E5F6/sensors'), again)
  t.same(observer.since(again).map(m => [m.topic, m.topic.endsWith('LWT') ? m.payload : '']), [
    ['tele/kitchen/LWT', 'Online'],
    ['cmnd/kitchen/POWER', ''],
    ['stat/kitchen/RESULT', ''],
    ['stat/kitchen/POWER', ''],
    ['tasmota/discovery/A1B2C3D4E5F6/config', ''],
    ['tasmota/discovery/A1B2C3D4E5F6/sensors', '']
  ], 'a reconnect is not a boot: no INFO, and a clean close published no will')
  t.equal(plug.connects, 2)
  t.equal(plug.closes, 1)
})

t.test('basic firmware: will, Online, one subscription, POWER', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { topic: 'lamp' })
  const subacks: string[][] = []
  plug.on('subscribed', (_granted, topics) => subacks.push(topics))
  const mark = observer.mark()
  await plug.connect()
  await observer.waitFor(topicIs('stat/lamp/POWER'), mark)
  t.same(pairs(observer.since(mark)), [['tele/lamp/LWT', 'Online'], ['stat/lamp/POWER', 'OFF']])
  t.same(subacks, [['cmnd/lamp/#']])
  t.match(broker.connects.find(p => p.clientId.startsWith('sim-lamp-')), { clientId: /^sim-lamp-[0-9a-f]{6}$/, will: { topic: 'tele/lamp/LWT', qos: 1, retain: true } })

  t.same(pairs(await exchange(observer, 'cmnd/lamp/POWER', 'ON', 'stat/lamp/POWER')), [['stat/lamp/POWER', 'ON']], 'no RESULT in basic mode')
  t.equal(plug.isOn, true)
})

t.test('drop() leaves without DISCONNECT: the broker publishes the will, nothing reconnects', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'drier' })
  await connected(plug, observer)
  const mark = observer.mark()
  const disconnected = once(plug, 'disconnected')
  plug.drop()
  const will = await observer.waitFor(m => m.topic === 'tele/drier/LWT' && m.payload === 'Offline', mark)
  await disconnected
  t.equal(will.payload, 'Offline')
  t.same(await retained(t, broker.url, 'tele/drier/LWT', 1), [{ topic: 'tele/drier/LWT', payload: 'Offline', retain: true }])
  t.equal(plug.connects, 1)
  t.equal(plug.closes, 1)
  t.equal(plug.connected, false)
})

t.test('POWER commands are answered with RESULT then POWER, on every command topic', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'heater', mac: 'A1B2C3D4E5F6' })
  await connected(plug, observer)
  const commands: string[] = []
  plug.on('command', c => commands.push(`${c.topic} ${c.payload}`))

  t.same(pairs(await exchange(observer, 'cmnd/heater/POWER', 'ON', 'stat/heater/POWER')), [['stat/heater/RESULT', '{"POWER":"ON"}'], ['stat/heater/POWER', 'ON']])
  t.equal(plug.isOn, true)
  t.same(pairs(await exchange(observer, 'cmnd/heater/POWER1', 'toggle', 'stat/heater/POWER')), [['stat/heater/RESULT', '{"POWER":"OFF"}'], ['stat/heater/POWER', 'OFF']])
  t.same(pairs(await exchange(observer, 'cmnd/heater/POWER', '1', 'stat/heater/POWER')), [['stat/heater/RESULT', '{"POWER":"ON"}'], ['stat/heater/POWER', 'ON']])
  t.same(pairs(await exchange(observer, 'cmnd/heater/POWER', '', 'stat/heater/POWER')), [['stat/heater/RESULT', '{"POWER":"ON"}'], ['stat/heater/POWER', 'ON']], 'an empty payload asks')
  t.equal(plug.isOn, true)
  t.same(pairs(await exchange(observer, 'cmnd/tasmotas/POWER', '0', 'stat/heater/POWER')), [['stat/heater/RESULT', '{"POWER":"OFF"}'], ['stat/heater/POWER', 'OFF']], 'the group topic')
  t.same(pairs(await exchange(observer, 'cmnd/DVES_D4E5F6_fb/POWER', 'ON', 'stat/DVES_D4E5F6_fb/POWER')), [['stat/DVES_D4E5F6_fb/RESULT', '{"POWER":"ON"}'], ['stat/DVES_D4E5F6_fb/POWER', 'ON']], 'the fallback topic answers on its own')
  t.same(commands, ['cmnd/heater/POWER ON', 'cmnd/heater/POWER1 toggle', 'cmnd/heater/POWER 1', 'cmnd/heater/POWER ', 'cmnd/tasmotas/POWER 0', 'cmnd/DVES_D4E5F6_fb/POWER ON'])
  t.same(plug.commands.map(c => c.topic), commands.map(c => c.split(' ')[0]))
})

t.test('STATUS 10: ENERGY integrates the clock while on, and stops when off', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const clock = new ManualClock()
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'boiler', on: true, watts: 100, voltage: 230, clock })
  await connected(plug, observer)

  const status10 = async () => {
    const answers = await exchange(observer, 'cmnd/boiler/STATUS', '10', 'stat/boiler/STATUS10')
    return JSON.parse(answers.find(topicIs('stat/boiler/STATUS10'))!.payload)
  }
  t.same(await status10(), {
    StatusSNS: {
      Time: T0_LOCAL,
      ENERGY: { TotalStartTime: T0_LOCAL, Total: 1, Yesterday: 0, Today: 0, Period: 0, Power: 100, ApparentPower: 100, ReactivePower: 0, Factor: 1, Voltage: 230, Current: 0.435 }
    }
  })

  clock.advance(3600_000)
  const hourLater = await status10()
  t.equal(hourLater.StatusSNS.Time, '2026-01-01T02:00:00')
  t.match(hourLater.StatusSNS.ENERGY, { Total: 1.1, Today: 0.1, Power: 100 })
  t.ok(Math.abs(plug.totalKwh - 1.1) < 1e-9)

  await exchange(observer, 'cmnd/boiler/POWER', 'OFF', 'stat/boiler/POWER')
  clock.advance(3600_000)
  t.match((await status10()).StatusSNS.ENERGY, { Total: 1.1, Today: 0.1, Power: 0, ApparentPower: 0, Factor: 0, Voltage: 230, Current: 0 })
})

t.test('press() toggles the relay and reports it', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'fan' })
  await connected(plug, observer)
  let mark = observer.mark()
  await plug.press()
  await observer.waitFor(topicIs('stat/fan/POWER'), mark)
  t.equal(plug.isOn, true)
  t.same(pairs(observer.since(mark)), [['stat/fan/RESULT', '{"POWER":"ON"}'], ['stat/fan/POWER', 'ON']])
  mark = observer.mark()
  await plug.press()
  await observer.waitFor(topicIs('stat/fan/POWER'), mark)
  t.equal(plug.isOn, false)
  t.same(pairs(observer.since(mark)), [['stat/fan/RESULT', '{"POWER":"OFF"}'], ['stat/fan/POWER', 'OFF']])
})

t.test("reply 'silent' neither acts nor answers", async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'mute' })
  await connected(plug, observer)
  plug.reply = 'silent'
  const mark = observer.mark()
  const ignored = plug.nextCommand(c => c.payload === 'ON')
  await observer.send('cmnd/mute/POWER', 'ON')
  t.same(await ignored, { topic: 'cmnd/mute/POWER', payload: 'ON' })
  t.equal(plug.isOn, false)

  plug.reply = 'normal'
  await observer.send('cmnd/mute/POWER', '')
  await observer.waitFor(topicIs('stat/mute/POWER'), mark)
  // Answers go out in order, so an answer to the first command would have come first.
  t.same(pairs(observer.since(mark).filter(m => m.topic.startsWith('stat/'))), [['stat/mute/RESULT', '{"POWER":"OFF"}'], ['stat/mute/POWER', 'OFF']])
})

t.test("reply 'held' switches at once and answers at releaseReplies()", async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'slow' })
  await connected(plug, observer)
  plug.reply = 'held'
  const mark = observer.mark()
  const received = plug.nextCommand()
  await observer.send('cmnd/slow/POWER', 'ON')
  await received
  t.equal(plug.isOn, true)
  // Telemetry goes out behind anything queued: an answer not held would arrive before it.
  await plug.reportTelemetry()
  await observer.waitFor(topicIs('tele/slow/SENSOR'), mark)
  t.same(observer.since(mark).filter(m => m.topic.startsWith('stat/')), [])

  await plug.releaseReplies()
  await observer.waitFor(topicIs('stat/slow/POWER'), mark)
  t.same(pairs(observer.since(mark).filter(m => m.topic.startsWith('stat/'))), [['stat/slow/RESULT', '{"POWER":"ON"}'], ['stat/slow/POWER', 'ON']])
})

t.test('answerPowerWith: a plug that will not switch', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'stuck' })
  await connected(plug, observer)
  plug.answerPowerWith = 'OFF'
  t.same(pairs(await exchange(observer, 'cmnd/stuck/POWER', 'ON', 'stat/stuck/POWER')), [['stat/stuck/RESULT', '{"POWER":"OFF"}'], ['stat/stuck/POWER', 'OFF']])
  t.equal(plug.isOn, false)
  plug.answerPowerWith = 'ON'
  t.same(pairs(await exchange(observer, 'cmnd/stuck/POWER', 'OFF', 'stat/stuck/POWER')), [['stat/stuck/RESULT', '{"POWER":"ON"}'], ['stat/stuck/POWER', 'ON']])
  t.equal(plug.isOn, true)
})

t.test('STATUS: legacy firmware answers on STATUS8 with a numeric Power', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const legacy = plugOn(t, broker.url, { topic: 'old', legacy: true, on: true })
  const current = plugOn(t, broker.url, { topic: 'new' })
  const real = plugOn(t, broker.url, { topic: 'pow', firmware: 'real', mac: 'A1B2C3D4E5F6' })
  await Promise.all([connected(legacy, observer), connected(current, observer), connected(real, observer)])
  const answer = async (topic: string, payload: string, until: string) =>
    JSON.parse((await exchange(observer, topic, payload, until)).find(topicIs(until))!.payload)

  for (const which of ['8', '10']) {
    const sns = await answer('cmnd/old/STATUS', which, 'stat/old/STATUS8')
    t.same(Object.keys(sns.StatusSNS.ENERGY), BASIC_ENERGY_KEYS, `STATUS ${which}`)
    t.equal(sns.StatusSNS.Time, T0_LOCAL)
  }
  t.match(await answer('cmnd/old/STATUS', '', 'stat/old/STATUS'), { Status: { Module: 1, DeviceName: 'Simulated Plug', FriendlyName: ['Simulated Plug'], Topic: 'old', Power: 1 } })

  t.same(Object.keys((await answer('cmnd/new/STATUS', '10', 'stat/new/STATUS10')).StatusSNS), ['Time', 'ENERGY'])
  t.ok(await answer('cmnd/new/STATUS', '8', 'stat/new/STATUS8'))
  t.match(await answer('cmnd/new/STATUS', '0', 'stat/new/STATUS'), { Status: { Topic: 'new', Power: '0' } })

  const all = await answer('cmnd/pow/STATUS', '0', 'stat/pow/STATUS0')
  t.same(Object.keys(all), ['Status', 'StatusPRM', 'StatusFWR', 'StatusNET', 'StatusSNS', 'StatusSTS'])
  t.match(all, {
    Status: { Module: 43, Topic: 'pow', Power: '0' },
    StatusFWR: { Version: '14.3.0(tasmota)' },
    StatusNET: { Hostname: 'pow-1526', IPAddress: '192.168.1.50', Mac: 'A1:B2:C3:D4:E5:F6' },
    StatusSNS: { Time: T0_LOCAL, ENERGY: { Total: 1 } },
    StatusSTS: { Time: T0_LOCAL, POWER: 'OFF' }
  })
})

t.test("a custom FullTopic '%topic%/%prefix%/'", async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'garage', fullTopic: '%topic%/%prefix%/', mac: 'A1B2C3D4E5F6' })
  const subscribed: string[] = []
  plug.on('subscribed', (_granted, topics) => subscribed.push(...topics))
  const mark = observer.mark()
  await plug.connect()
  await observer.waitFor(topicIs('tasmota/discovery/A1B2C3D4E5F6/sensors'), mark)
  t.same(observer.since(mark).map(m => m.topic).slice(0, 7), [
    'garage/tele/LWT', 'garage/cmnd/POWER', 'garage/tele/INFO1', 'garage/tele/INFO2', 'garage/tele/INFO3', 'garage/stat/RESULT', 'garage/stat/POWER'
  ])
  t.same(subscribed, ['garage/cmnd/#', 'tasmotas/cmnd/#', 'cmnd/DVES_D4E5F6_fb/#'])
  t.match(broker.connects.find(p => p.clientId === 'DVES_D4E5F6'), { will: { topic: 'garage/tele/LWT' } })
  t.same(pairs(await exchange(observer, 'garage/cmnd/POWER', 'ON', 'garage/stat/POWER')), [['garage/stat/RESULT', '{"POWER":"ON"}'], ['garage/stat/POWER', 'ON']])
})

t.test('TelePeriod: STATE and SENSOR 5 s after connecting, then every period', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const clock = new ManualClock()
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'tv', on: true, telePeriodSeconds: 60, clock })
  await connected(plug, observer)
  const mark = observer.mark()
  clock.advance(4999)
  // A query answered now comes after any telemetry the clock triggered.
  await exchange(observer, 'cmnd/tv/POWER', '', 'stat/tv/POWER')
  t.same(observer.since(mark).filter(m => m.topic.startsWith('tele/')), [], 'nothing before 5 s')

  clock.advance(1)
  const sensor = await observer.waitFor(topicIs('tele/tv/SENSOR'), mark)
  const state = observer.since(mark).find(topicIs('tele/tv/STATE'))!
  t.ok(observer.since(mark).indexOf(state) < observer.since(mark).indexOf(sensor), 'STATE before SENSOR')
  const statePayload = JSON.parse(state.payload)
  t.same(Object.keys(statePayload), ['Time', 'Uptime', 'UptimeSec', 'Heap', 'SleepMode', 'Sleep', 'LoadAvg', 'MqttCount', 'POWER', 'Wifi'])
  t.match(statePayload, { Time: '2026-01-01T01:00:05', Uptime: '0T00:00:05', UptimeSec: 5, MqttCount: 1, POWER: 'ON', Wifi: Object })
  const sensorPayload = JSON.parse(sensor.payload)
  t.same(Object.keys(sensorPayload), ['Time', 'ENERGY'])
  t.equal(sensorPayload.Time, '2026-01-01T01:00:05')
  t.same(Object.keys(sensorPayload.ENERGY), ENERGY_KEYS)

  const next = observer.mark()
  clock.advance(60_000)
  const second = JSON.parse((await observer.waitFor(topicIs('tele/tv/SENSOR'), next)).payload)
  t.equal(second.Time, '2026-01-01T01:01:05')
  t.equal(second.ENERGY.Period, 2, 'Wh since the previous TelePeriod: 100 W for 60 s')
})

t.test('connect() rejects when the broker refuses, and may be tried again', async t => {
  const broker = await startBroker(t, { refuseConnect: true })
  const plug = plugOn(t, broker.url, { topic: 'nope' })
  await t.rejects(plug.connect())
  t.equal(plug.connects, 0)
  t.equal(plug.connected, false)
  await t.rejects(plug.connect(), 'a second attempt is a new connection, refused again')
})

t.test('with reconnect on, a lost connection comes back with the sequence minus INFO', async t => {
  const broker = await startBroker(t)
  const observer = await observe(t, broker.url)
  const plug = plugOn(t, broker.url, { firmware: 'real', topic: 'cli', mac: 'A1B2C3D4E5F6', reconnect: true })
  await connected(plug, observer)
  const mark = observer.mark()
  const reconnected = once(plug, 'connected')
  broker.clients.get('DVES_D4E5F6')!.close()
  await reconnected
  await observer.waitFor(topicIs('tasmota/discovery/A1B2C3D4E5F6/sensors'), mark)
  t.same(observer.since(mark).map(m => [m.topic, m.topic.endsWith('LWT') ? m.payload : '']), [
    ['tele/cli/LWT', 'Offline'],
    ['tele/cli/LWT', 'Online'],
    ['cmnd/cli/POWER', ''],
    ['stat/cli/RESULT', ''],
    ['stat/cli/POWER', ''],
    ['tasmota/discovery/A1B2C3D4E5F6/config', ''],
    ['tasmota/discovery/A1B2C3D4E5F6/sensors', '']
  ])
  t.equal(plug.connects, 2)
  t.same(pairs(await exchange(observer, 'cmnd/cli/POWER', 'ON', 'stat/cli/POWER')), [['stat/cli/RESULT', '{"POWER":"ON"}'], ['stat/cli/POWER', 'ON']], 'subscribed again')
})
