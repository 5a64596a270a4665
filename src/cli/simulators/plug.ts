import { createHash, randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import mqtt, { type MqttClient } from 'mqtt'
import { systemClock, type Clock, type Timer } from '../../clock.ts'

/**
 * A Tasmota smart plug over MQTT, for tests and for trying the service without hardware.
 * `real` reproduces what stock Tasmota 14 on a Sonoff Pow R2 sends, in its order; `basic` is the
 * least a Tasmota plug does (commands on `cmnd/<topic>/#`, answers on `stat/<topic>/POWER`).
 * Every "now" and every timer comes from the clock, so a test moves time by hand.
 */

export type Firmware = 'basic' | 'real'
export type ReplyMode = 'normal' | 'silent' | 'held'
export type PowerState = 'ON' | 'OFF'

export interface PlugSimulatorOptions {
  /** mqtt://127.0.0.1:<port> */
  url: string
  username: string
  password: string
  /** Tasmota's Topic. */
  topic: string
  /** Default 'basic'. */
  firmware?: Firmware
  /** Older firmware: Status.Power is a number, and STATUS 8 and 10 both answer on STATUS8. */
  legacy?: boolean
  /** Default '%prefix%/%topic%/'. */
  fullTopic?: string
  /** Default: real → 'DVES_' and the mac's last 6 hex digits, as Tasmota; basic → `sim-<topic>-<random>`. */
  clientId?: string
  /** 12 upper-case hex digits; default derived from the topic. */
  mac?: string
  /** Default 'Simulated Plug'. */
  deviceName?: string
  /** Consumption while on; default 100. */
  watts?: number
  /** Default 230. */
  voltage?: number
  /** The relay at start; default false. */
  on?: boolean
  /** Energy Total at start, kWh; default 1. */
  totalKwh?: number
  /** STATE and SENSOR every this many seconds (first 5 s after connecting); 0 turns it off. Default 300. */
  telePeriodSeconds?: number
  clock?: Clock
  /** Reconnect every 2 s after losing the broker (the CLI). Default false: tests count connections. */
  reconnect?: boolean
}

export interface PlugCommand { topic: string, payload: string }
export interface PlugPublication { topic: string, payload: string, retain: boolean }

export interface PlugSimulatorEvents {
  /** Every message received on a subscribed command topic, after the plug acted on it. */
  command: [command: PlugCommand]
  /** One per SUBACK: the granted codes (0x80 = refused) and the topics asked for. */
  subscribed: [granted: number[], topics: string[]]
  /** Every message the plug published, once the broker acknowledged it. */
  published: [publication: PlugPublication]
  /** The connect sequence after a CONNACK was sent and acknowledged. */
  connected: [connects: number]
  disconnected: []
  connectionError: [error: Error]
}

const VERSION = '14.3.0'
const MODULE = 'Sonoff Pow R2'
const IP_ADDRESS = '192.168.1.50'
const GROUP_TOPIC = 'tasmotas'
const FIRST_TELEMETRY_MS = 5000
const RECONNECT_MS = 2000
/** Tasmota subscribes with PubSubClient's default QoS. */
const SUBSCRIBE_QOS = 0
/** Everything at QoS 1 so a caller can await the broker's PUBACK; Tasmota itself publishes at 0. */
const PUBLISH_QOS = 1

const round3 = (value: number): number => Math.round(value * 1000) / 1000
const pad = (value: number, width = 2): string => String(value).padStart(width, '0')

/** Tasmota's `Time`: local time, ISO 8601 without a zone. */
export function tasmotaTime (ms: number): string {
  const d = new Date(ms)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/** Tasmota's `Uptime`: days, 'T', hh:mm:ss. */
function tasmotaUptime (seconds: number): string {
  const days = Math.floor(seconds / 86_400)
  const rest = seconds % 86_400
  return `${days}T${pad(Math.floor(rest / 3600))}:${pad(Math.floor(rest / 60) % 60)}:${pad(rest % 60)}`
}

const macFromTopic = (topic: string): string => createHash('sha256').update(topic).digest('hex').slice(0, 12).toUpperCase()

/** Where a command came from: the answers go back on the same kind of topic (Tasmota's fallback_topic_flag). */
interface Route { command: string, stat: (name: string) => string }

export class PlugSimulator extends EventEmitter<PlugSimulatorEvents> {
  reply: ReplyMode = 'normal'
  /** Answer every POWER command with this state and switch to it, as a plug that refuses to switch. */
  answerPowerWith?: PowerState
  readonly commands: PlugCommand[] = []

  readonly topic: string
  readonly firmware: Firmware
  readonly legacy: boolean
  readonly fullTopic: string
  readonly clientId: string
  readonly mac: string
  readonly hostname: string
  readonly deviceName: string

  private readonly options: PlugSimulatorOptions
  private readonly clock: Clock
  private readonly watts: number
  private readonly voltage: number
  private readonly telePeriodMs: number
  private readonly bootedAt: number

  private relay: boolean
  private total: number
  private today = 0
  private periodStartTotal: number
  private accruedAt: number

  private client: MqttClient | undefined
  private pendingConnect: { resolve: () => void, reject: (error: Error) => void } | undefined
  private connectCount = 0
  private closeCount = 0
  /** Bumped at every CONNACK and close: queued publications of an earlier connection are dropped. */
  private generation = 0
  /** One publication at a time, in order, as one firmware loop would send them. */
  private chain: Promise<void> = Promise.resolve()
  private heldReplies: PlugPublication[] = []
  private telemetryTimers: Timer[] = []

  constructor (options: PlugSimulatorOptions) {
    super()
    this.options = options
    this.topic = options.topic
    this.firmware = options.firmware ?? 'basic'
    this.legacy = options.legacy ?? false
    const fullTopic = options.fullTopic ?? '%prefix%/%topic%/'
    this.fullTopic = fullTopic.endsWith('/') ? fullTopic : fullTopic + '/'
    this.mac = (options.mac ?? macFromTopic(options.topic)).replaceAll(':', '').toUpperCase()
    this.clientId = options.clientId ?? (this.firmware === 'real'
      ? `DVES_${this.mac.slice(6)}`
      : `sim-${options.topic}-${randomBytes(3).toString('hex')}`)
    // Tasmota's default hostname: "%s-%04d" of the topic and the chip id's low 13 bits.
    this.hostname = `${options.topic}-${pad(Number.parseInt(this.mac.slice(6), 16) & 0x1fff, 4)}`
    this.deviceName = options.deviceName ?? 'Simulated Plug'
    this.clock = options.clock ?? systemClock
    this.watts = options.watts ?? 100
    this.voltage = options.voltage ?? 230
    this.telePeriodMs = (options.telePeriodSeconds ?? 300) * 1000
    this.relay = options.on ?? false
    this.total = options.totalKwh ?? 1
    this.periodStartTotal = this.total
    this.bootedAt = this.clock.now()
    this.accruedAt = this.bootedAt
  }

  /** The relay. Not `on`: that is EventEmitter's. */
  get isOn (): boolean { return this.relay }
  /** Unrounded; reports round to 3 decimals. */
  get totalKwh (): number {
    this.accrue()
    return this.total
  }

  /** CONNACKs received. */
  get connects (): number { return this.connectCount }
  /** Connection 'close' events. */
  get closes (): number { return this.closeCount }
  get connected (): boolean { return this.client?.connected === true }

  /** Resolves once connected and the whole connect sequence was acknowledged by the broker. */
  connect (): Promise<void> {
    if (this.client !== undefined) return Promise.reject(new Error(`${this.clientId} is already connected`))
    const client = mqtt.connect(this.options.url, {
      clientId: this.clientId,
      username: this.options.username,
      password: this.options.password,
      protocolVersion: 4,
      clean: true,
      keepalive: 30,
      will: { topic: this.teleTopic('LWT'), payload: Buffer.from('Offline'), qos: 1, retain: true },
      reconnectPeriod: this.options.reconnect === true ? RECONNECT_MS : 0,
      // The connect sequence subscribes itself, in Tasmota's order; mqtt.js must not add its own.
      resubscribe: false
    })
    this.client = client
    const settled = new Promise<void>((resolve, reject) => { this.pendingConnect = { resolve, reject } })
    client.on('connect', () => this.onConnack(client))
    client.on('message', (topic, payload) => this.onCommand(topic, payload.toString('utf8')))
    client.on('error', error => {
      this.failConnect(error)
      this.emit('connectionError', error)
    })
    client.on('close', () => this.onClose(client))
    return settled
  }

  /** A clean DISCONNECT: the broker does not publish the will. */
  async close (): Promise<void> {
    const client = this.client
    if (client === undefined) return
    this.client = undefined
    this.stopTelemetry()
    await client.endAsync()
  }

  /** The plug loses power or network: the socket goes without a DISCONNECT, so the broker publishes the will. */
  drop (): void {
    const client = this.client
    if (client === undefined) return
    this.client = undefined
    this.stopTelemetry()
    client.stream.destroy()
    client.end(true)
  }

  /** The button on the plug: toggles the relay and reports it, whatever `reply` says. */
  press (): Promise<void> {
    this.switchRelay(!this.relay)
    return this.send(this.powerReport())
  }

  /** Publishes the answers held while `reply` was 'held', in order. `reply` stays as it is. */
  releaseReplies (): Promise<void> {
    return this.send(this.heldReplies.splice(0))
  }

  /** The next command received from now on that matches. */
  nextCommand (match: (command: PlugCommand) => boolean = () => true): Promise<PlugCommand> {
    return new Promise(resolve => {
      const listener = (command: PlugCommand) => {
        if (!match(command)) return
        this.off('command', listener)
        resolve(command)
      }
      this.on('command', listener)
    })
  }

  /** STATE and SENSOR now, as at a TelePeriod. */
  reportTelemetry (): Promise<void> {
    const state = this.publication(this.teleTopic('STATE'), this.statePayload())
    const sensor = this.publication(this.teleTopic('SENSOR'), { Time: this.time(), ENERGY: this.energy() })
    // Tasmota's Period is the energy since the previous TelePeriod.
    this.periodStartTotal = this.total
    return this.send([state, sensor])
  }

  private onConnack (client: MqttClient): void {
    this.connectCount += 1
    this.generation += 1
    const boot = this.connectCount === 1
    this.startTelemetry()
    this.enqueue(() => this.connectSequence(client, boot)).then(() => {
      this.pendingConnect?.resolve()
      this.pendingConnect = undefined
      this.emit('connected', this.connectCount)
    }, (error: Error) => {
      this.failConnect(error)
      this.emit('connectionError', error)
    })
  }

  private onClose (client: MqttClient): void {
    this.closeCount += 1
    this.generation += 1
    this.stopTelemetry()
    this.failConnect(new Error(`${this.clientId}: connection closed before the connect sequence completed`))
    if (this.options.reconnect !== true) {
      if (this.client === client) this.client = undefined
      client.end(true)
    }
    this.emit('disconnected')
  }

  private failConnect (error: Error): void {
    const pending = this.pendingConnect
    if (pending === undefined) return
    this.pendingConnect = undefined
    // A first connection that fails is the caller's error; the client is not retried behind its back.
    if (this.client !== undefined) {
      const client = this.client
      this.client = undefined
      client.end(true)
    }
    pending.reject(error)
  }

  /** Stock Tasmota 14's MqttConnected(), step by step, each acknowledged before the next. */
  private async connectSequence (client: MqttClient, boot: boolean): Promise<void> {
    const publish = (p: PlugPublication) => this.publish(client, p)
    await publish({ topic: this.teleTopic('LWT'), payload: 'Online', retain: true })
    if (this.firmware === 'basic') {
      await this.subscribe(client, this.commandTopic(this.topic) + '#')
      for (const p of this.powerReport()) await publish(p)
      return
    }
    // Tasmota's "Satisfy iobroker": an empty POWER on its own command topic, before subscribing.
    await publish({ topic: this.commandTopic(this.topic) + 'POWER', payload: '', retain: false })
    for (const topic of this.commandPrefixes()) await this.subscribe(client, topic + '#')
    if (boot) {
      const info = [
        { Info1: { Module: MODULE, Version: `${VERSION}(tasmota)`, FallbackTopic: this.fallbackPrefix(), GroupTopic: this.commandTopic(GROUP_TOPIC) } },
        { Info2: { WebServerMode: 'Admin', Hostname: this.hostname, IPAddress: IP_ADDRESS } },
        { Info3: { RestartReason: 'Power On', BootCount: 3 } }
      ]
      for (const [index, payload] of info.entries()) await publish(this.publication(this.teleTopic(`INFO${index + 1}`), payload))
    }
    for (const p of this.powerReport()) await publish(p)
    await publish(this.publication(`tasmota/discovery/${this.mac}/config`, this.discoveryConfig(), true))
    await publish(this.publication(`tasmota/discovery/${this.mac}/sensors`, { sn: { Time: this.time(), ENERGY: this.energy() }, ver: 1 }, true))
  }

  private onCommand (topic: string, payload: string): void {
    const route = this.route(topic)
    if (route !== undefined && this.reply !== 'silent') {
      const answers = this.answer(route, payload)
      if (this.reply === 'held') this.heldReplies.push(...answers)
      else this.send(answers).catch((error: Error) => this.emit('connectionError', error))
    }
    const command = { topic, payload }
    this.commands.push(command)
    this.emit('command', command)
  }

  /** The answers to one command, built now (state and time of receipt), published later. */
  private answer (route: Route, payload: string): PlugPublication[] {
    switch (route.command) {
      case 'POWER':
      case 'POWER1': {
        const requested = payload.trim().toUpperCase()
        if (this.answerPowerWith !== undefined) this.switchRelay(this.answerPowerWith === 'ON')
        else if (requested === 'ON' || requested === '1') this.switchRelay(true)
        else if (requested === 'OFF' || requested === '0') this.switchRelay(false)
        else if (requested === 'TOGGLE' || requested === '2') this.switchRelay(!this.relay)
        // Anything else, the empty payload included, is a query: Tasmota reports the state.
        return this.powerReport(route.stat)
      }
      case 'STATUS': {
        const which = payload.trim() === '' ? 0 : Number(payload.trim())
        if (which === 8 || which === 10) {
          const name = which === 8 || this.legacy ? 'STATUS8' : 'STATUS10'
          return [this.publication(route.stat(name), { StatusSNS: this.sensorStatus() })]
        }
        if (which !== 0) return []
        if (this.firmware === 'basic') return [this.publication(route.stat('STATUS'), { Status: this.status() })]
        return [this.publication(route.stat('STATUS0'), {
          Status: this.status(),
          StatusPRM: this.parameterStatus(),
          StatusFWR: { Version: `${VERSION}(tasmota)`, BuildDateTime: '2024-11-19T10:37:43', Boot: 31, Core: '2_7_7', SDK: '2.2.2-dev(38a443e)', CpuFrequency: 80, Hardware: 'ESP8266EX', CR: '378/699' },
          StatusNET: this.networkStatus(),
          StatusSNS: this.sensorStatus(),
          StatusSTS: this.statePayload()
        })]
      }
      default:
        return []
    }
  }

  private powerReport (stat: (name: string) => string = name => this.statTopic(name)): PlugPublication[] {
    const power = this.relay ? 'ON' : 'OFF'
    const plain = { topic: stat('POWER'), payload: power, retain: false }
    return this.firmware === 'real' ? [this.publication(stat('RESULT'), { POWER: power }), plain] : [plain]
  }

  private switchRelay (on: boolean): void {
    this.accrue()
    this.relay = on
  }

  private accrue (): void {
    const now = this.clock.now()
    if (this.relay) {
      const kwh = this.watts * (now - this.accruedAt) / 3_600_000_000
      this.total += kwh
      this.today += kwh
    }
    this.accruedAt = now
  }

  private energy (): Record<string, number | string> {
    this.accrue()
    const current = this.relay ? this.watts / this.voltage : 0
    const power = this.relay ? this.watts : 0
    const measured = {
      Power: round3(power),
      ApparentPower: round3(this.voltage * current),
      ReactivePower: 0,
      Factor: this.relay ? 1 : 0,
      Voltage: round3(this.voltage),
      Current: round3(current)
    }
    if (this.firmware === 'basic') return { Total: round3(this.total), Today: round3(this.today), ...measured }
    return {
      TotalStartTime: tasmotaTime(this.bootedAt),
      Total: round3(this.total),
      Yesterday: 0,
      Today: round3(this.today),
      Period: Math.round((this.total - this.periodStartTotal) * 1000),
      ...measured
    }
  }

  private time (): string { return tasmotaTime(this.clock.now()) }

  private sensorStatus () { return { Time: this.time(), ENERGY: this.energy() } }

  private statePayload () {
    const uptime = Math.floor((this.clock.now() - this.bootedAt) / 1000)
    return {
      Time: this.time(),
      Uptime: tasmotaUptime(uptime),
      UptimeSec: uptime,
      Heap: 25,
      SleepMode: 'Dynamic',
      Sleep: 50,
      LoadAvg: 19,
      MqttCount: this.connectCount,
      POWER: this.relay ? 'ON' : 'OFF',
      Wifi: { AP: 1, SSId: 'simulated', BSSId: '02:00:00:00:00:01', Channel: 6, Mode: '11n', RSSI: 90, Signal: -55, LinkCount: 1, Downtime: '0T00:00:03' }
    }
  }

  private status () {
    const power = this.legacy ? (this.relay ? 1 : 0) : (this.relay ? '1' : '0')
    return {
      Module: this.firmware === 'real' ? 43 : 1,
      DeviceName: this.deviceName,
      FriendlyName: [this.deviceName],
      Topic: this.topic,
      ButtonTopic: '0',
      Power: power,
      PowerLock: '0',
      PowerOnState: 3,
      LedState: 1,
      LedMask: 'FFFF',
      SaveData: 1,
      SaveState: 1,
      SwitchTopic: '0',
      SwitchMode: [0, 0, 0, 0, 0, 0, 0, 0],
      ButtonRetain: 0,
      SwitchRetain: 0,
      SensorRetain: 0,
      PowerRetain: 0,
      InfoRetain: 0,
      StateRetain: 0,
      StatusRetain: 0
    }
  }

  private parameterStatus () {
    return {
      Baudrate: 4800,
      SerialConfig: '8E1',
      GroupTopic: GROUP_TOPIC,
      OtaUrl: 'http://ota.tasmota.com/tasmota/release/tasmota.bin.gz',
      RestartReason: 'Power On',
      Uptime: tasmotaUptime(Math.floor((this.clock.now() - this.bootedAt) / 1000)),
      StartupUTC: new Date(this.bootedAt).toISOString().slice(0, 19),
      Sleep: 50,
      CfgHolder: 4617,
      BootCount: 3,
      BCResetTime: tasmotaTime(this.bootedAt),
      SaveCount: 20
    }
  }

  private networkStatus () {
    return {
      Hostname: this.hostname,
      IPAddress: IP_ADDRESS,
      Gateway: '192.168.1.1',
      Subnetmask: '255.255.255.0',
      DNSServer1: '192.168.1.1',
      DNSServer2: '0.0.0.0',
      Mac: this.mac.match(/../g)!.join(':'),
      Webserver: 2,
      HTTP_API: 1,
      WifiConfig: 4,
      WifiPower: 17
    }
  }

  private discoveryConfig () {
    const eight = <T>(first: T, rest: T): T[] => [first, ...Array<T>(7).fill(rest)]
    return {
      ip: IP_ADDRESS,
      dn: this.deviceName,
      fn: eight<string | null>(this.deviceName, null),
      hn: this.hostname,
      mac: this.mac,
      md: MODULE,
      ty: 0,
      if: 0,
      cam: 0,
      ofln: 'Offline',
      onln: 'Online',
      state: ['OFF', 'ON', 'TOGGLE', 'HOLD'],
      sw: VERSION,
      t: this.topic,
      ft: this.fullTopic,
      tp: ['cmnd', 'stat', 'tele'],
      rl: eight(1, 0),
      swc: eight(-1, -1),
      swn: eight(null, null),
      btn: eight(0, 0),
      so: { 4: 0, 11: 0, 13: 0, 17: 0, 20: 0, 30: 0, 68: 0, 73: 0, 82: 0, 114: 0, 117: 0 },
      lk: 0,
      lt_st: 0,
      bat: 0,
      dslp: 0,
      sho: [],
      sht: [],
      ver: 1
    }
  }

  private topicFor (prefix: 'cmnd' | 'stat' | 'tele', topic: string): string {
    return this.fullTopic.replaceAll('%prefix%', prefix).replaceAll('%topic%', topic)
  }

  private commandTopic (topic: string): string { return this.topicFor('cmnd', topic) }
  private statTopic (name: string): string { return this.topicFor('stat', this.topic) + name }
  private teleTopic (name: string): string { return this.topicFor('tele', this.topic) + name }
  /** Tasmota's fallback topic ignores FullTopic: always `<prefix>/<client id>_fb/`. */
  private fallbackPrefix (prefix = 'cmnd'): string { return `${prefix}/${this.clientId}_fb/` }

  /** The command topics subscribed to, in Tasmota's order: own, group, fallback. */
  private commandPrefixes (): string[] {
    const own = this.commandTopic(this.topic)
    return this.firmware === 'real' ? [own, this.commandTopic(GROUP_TOPIC), this.fallbackPrefix()] : [own]
  }

  private route (topic: string): Route | undefined {
    const [own, group, fallback] = this.commandPrefixes()
    for (const prefix of [own, group]) {
      if (prefix !== undefined && topic.startsWith(prefix)) {
        return { command: topic.slice(prefix.length).toUpperCase(), stat: name => this.statTopic(name) }
      }
    }
    if (fallback !== undefined && topic.startsWith(fallback)) {
      return { command: topic.slice(fallback.length).toUpperCase(), stat: name => this.fallbackPrefix('stat') + name }
    }
    return undefined
  }

  private publication (topic: string, payload: unknown, retain = false): PlugPublication {
    return { topic, payload: JSON.stringify(payload), retain }
  }

  private subscribe (client: MqttClient, topic: string): Promise<number[]> {
    return new Promise((resolve, reject) => {
      client.subscribe(topic, { qos: SUBSCRIBE_QOS }, (error, _grants, suback) => {
        // A SUBACK that refuses (0x80) is the broker's answer, not a failure: Tasmota carries on.
        if (suback !== undefined) {
          const granted = (suback.granted as unknown[]).map(Number)
          this.emit('subscribed', granted, [topic])
          resolve(granted)
        } else {
          reject(error ?? new Error(`no SUBACK for ${topic}`))
        }
      })
    })
  }

  /** One publication, settled by its PUBACK or by the connection closing first. */
  private publish (client: MqttClient, publication: PlugPublication): Promise<void> {
    return new Promise((resolve, reject) => {
      // QoS 1 callbacks wait for a resend after a reconnect; the plug forgets them instead.
      const onClose = () => reject(new Error(`${this.clientId}: connection closed before PUBACK of ${publication.topic}`))
      client.once('close', onClose)
      client.publish(publication.topic, publication.payload, { qos: PUBLISH_QOS, retain: publication.retain }, error => {
        client.off('close', onClose)
        if (error) return reject(error)
        this.emit('published', publication)
        resolve()
      })
    })
  }

  /** Publications in order behind everything queued; dropped while offline, as the firmware does. */
  private send (publications: PlugPublication[]): Promise<void> {
    if (publications.length === 0) return Promise.resolve()
    return this.enqueue(async () => {
      const client = this.client
      if (client === undefined || !client.connected) return
      for (const p of publications) await this.publish(client, p)
    })
  }

  private enqueue (task: () => Promise<void>): Promise<void> {
    const generation = this.generation
    const run = this.chain.then(() => generation === this.generation ? task() : undefined)
    this.chain = run.catch(() => undefined)
    return run
  }

  private startTelemetry (): void {
    this.stopTelemetry()
    if (this.telePeriodMs <= 0) return
    const tick = () => { this.reportTelemetry().catch((error: Error) => this.emit('connectionError', error)) }
    this.telemetryTimers.push(this.clock.setTimeout(() => {
      tick()
      this.telemetryTimers.push(this.clock.setInterval(tick, this.telePeriodMs))
    }, FIRST_TELEMETRY_MS))
  }

  private stopTelemetry (): void {
    for (const timer of this.telemetryTimers.splice(0)) timer.cancel()
  }
}
