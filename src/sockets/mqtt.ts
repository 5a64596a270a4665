import { z } from 'zod'
import { EnergyReading, type Power } from '../../events/sockets.ts'
import { refuse, type ConnectedDevice, type DeviceKind, type Interpretation } from '../broker/device-kind.ts'
import type { Transaction } from '../store/event-store.ts'
import { decideSocket, evolveSocket, initialSocketState, type SocketCommand, type SocketEvent } from './decider.ts'
import type { SocketQueries, SocketRow } from './projections.ts'

// Tasmota's topics, as stock firmware (13.x, 14.x) uses them. Its payloads are Tasmota's
// contract, not ours: we read the fields we use and let every other field pass.

/** Tasmota's default GroupTopic: commands to every plug at once, which only the service sends. */
export const GROUP_TOPIC = 'tasmotas'
const DISCOVERY = /^tasmota\/discovery\/([0-9A-Fa-f]{12})\/(config|sensors)$/

/** `cmnd/<topic>/` for the default FullTopic `%prefix%/%topic%/`. */
export const topicBase = (fullTopic: string, prefix: 'cmnd' | 'stat' | 'tele', topic: string): string => {
  const base = fullTopic.replaceAll('%prefix%', prefix).replaceAll('%topic%', topic)
  return base.endsWith('/') ? base : `${base}/`
}
export const commandTopic = (socket: Pick<SocketRow, 'full_topic' | 'topic'>, command: string): string =>
  topicBase(socket.full_topic, 'cmnd', socket.topic) + command

/** ON/OFF as Tasmota writes it: "ON", "on", 1, "1", true, or a string of relay bits ("01": relay 1 is the last). */
export function parsePower (value: unknown): Power | undefined {
  if (typeof value === 'boolean') return value ? 'ON' : 'OFF'
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return (value & 1) === 1 ? 'ON' : 'OFF'
  if (typeof value !== 'string') return undefined
  const text = value.trim().toUpperCase()
  if (text === 'ON' || text === 'OFF') return text
  if (/^[01]+$/.test(text)) return text.endsWith('1') ? 'ON' : 'OFF'
  return undefined
}

const energyField = z.preprocess(value => typeof value === 'string' && value.trim() !== '' ? Number(value) : value, z.number().finite()).optional().catch(undefined)
/** ENERGY as Tasmota sends it: numbers (sometimes strings), and fields we do not use. */
const TasmotaEnergy = z.looseObject(Object.fromEntries(Object.keys(EnergyReading.shape).map(key => [key, energyField])))
const text = z.union([z.string(), z.number()]).transform(String).optional().catch(undefined)

function readEnergy (value: unknown): z.infer<typeof EnergyReading> | undefined {
  const parsed = TasmotaEnergy.safeParse(value)
  if (!parsed.success) return undefined
  const energy: Record<string, number> = {}
  for (const key of Object.keys(EnergyReading.shape)) {
    const field = parsed.data[key]
    if (typeof field === 'number') energy[key] = field
  }
  return energy
}

const objectAt = (value: unknown, key: string): Record<string, unknown> | undefined => {
  if (typeof value !== 'object' || value === null) return undefined
  const inner = (value as Record<string, unknown>)[key]
  return typeof inner === 'object' && inner !== null && !Array.isArray(inner) ? inner as Record<string, unknown> : undefined
}

/** Commands take the time of the transaction that decides them. */
type Reading = { commands: (at: number) => SocketCommand[] } | { refused: Interpretation }
const readingOf = (commands: Array<SocketCommand | ((at: number) => SocketCommand)>): Reading =>
  ({ commands: at => commands.map(c => typeof c === 'function' ? c(at) : c) })

/** What one message of the plug means, as decider commands (Tasmota may say several things at once). */
function readReport (prefix: 'stat' | 'tele', name: string, payload: Buffer, topic: string): Reading {
  const raw = payload.toString('utf8')
  const other = (): Reading => readingOf([{ type: 'RecordMessage', topic, payload: raw }])
  const power = (value: unknown, source: string): Array<(at: number) => SocketCommand> => {
    const parsed = parsePower(value)
    return parsed === undefined ? [] : [at => ({ type: 'ReportPower', power: parsed, source, at })]
  }
  if (prefix === 'stat' && (name === 'POWER' || name === 'POWER1')) {
    const commands = power(raw, name)
    return commands.length > 0 ? readingOf(commands) : { refused: refuse('invalid_payload', `${name} must be ON or OFF`) }
  }
  if (prefix === 'tele' && name === 'LWT') {
    if (raw === 'Online' || raw === 'Offline') return readingOf([{ type: 'ReportAvailability', online: raw === 'Online' }])
    return other()
  }
  const jsonTopics = prefix === 'stat' ? /^(RESULT|STATUS\d*)$/ : /^(SENSOR|INFO[123])$/
  if (!jsonTopics.test(name)) return other()
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch (error) {
    return { refused: refuse('invalid_json', (error as Error).message) }
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { refused: refuse('invalid_payload', `${name} must be a JSON object`) }
  const body = json as Record<string, unknown>
  const commands: Array<SocketCommand | ((at: number) => SocketCommand)> = []
  const energy = (value: unknown, source: string) => {
    const reading = readEnergy(value)
    if (reading !== undefined) commands.push({ type: 'ReportEnergy', source, energy: reading })
  }
  switch (name) {
    case 'RESULT':
      commands.push(...power(body.POWER ?? body.POWER1, 'RESULT'))
      break
    case 'SENSOR':
      energy(body.ENERGY, 'SENSOR')
      break
    case 'INFO1': {
      const info = objectAt(body, 'Info1')
      commands.push({ type: 'ReportInfo', source: name, firmware_version: text.parse(info?.Version), module: text.parse(info?.Module) })
      break
    }
    case 'INFO2': {
      const info = objectAt(body, 'Info2')
      commands.push({ type: 'ReportInfo', source: name, hostname: text.parse(info?.Hostname), ip_address: text.parse(info?.IPAddress) })
      break
    }
    case 'INFO3':
      commands.push({ type: 'ReportInfo', source: name, restart_reason: text.parse(objectAt(body, 'Info3')?.RestartReason) })
      break
    default: {
      // STATUS (general status), STATUS0 (every status at once, newer firmware),
      // STATUS10 (energy; STATUS8 on older firmware), and the other STATUSn we do not use.
      const status = objectAt(body, 'Status')
      if (status !== undefined) {
        commands.push({ type: 'ReportStatus', device_name: text.parse(status.DeviceName) ?? null })
        commands.push(...power(status.Power, name))
      }
      const firmware = objectAt(body, 'StatusFWR')
      const network = objectAt(body, 'StatusNET')
      if (firmware !== undefined || network !== undefined) {
        commands.push({
          type: 'ReportInfo', source: name, firmware_version: text.parse(firmware?.Version),
          hostname: text.parse(network?.Hostname), ip_address: text.parse(network?.IPAddress)
        })
      }
      energy(objectAt(body, 'StatusSNS')?.ENERGY, name)
    }
  }
  // Undefined info fields are dropped when the event is serialised.
  return commands.length > 0 ? readingOf(commands) : other()
}

/** How the broker treats a Tasmota plug: its own topics, its discovery, and nothing else. */
export function socketDeviceKind (sockets: SocketQueries, listening: (socketId: string) => void): DeviceKind {
  const decideAll = (socketId: string, commands: SocketCommand[]): SocketEvent[] => {
    const row = sockets.socket(socketId)
    let state = row === undefined ? initialSocketState() : sockets.state(row)
    const events: SocketEvent[] = []
    for (const command of commands) {
      for (const event of decideSocket(command, state)) {
        state = evolveSocket(state, event)
        events.push(event)
      }
    }
    return events
  }

  function discovery (device: ConnectedDevice, socket: SocketRow, mac: string, part: string, payload: Buffer): Interpretation {
    const owner = sockets.macOwner(mac)
    if (owner !== undefined && owner !== socket.socket_id) return refuse('foreign_topic', `MAC ${mac} belongs to another plug`)
    if (owner === undefined && socket.mac !== null) return refuse('foreign_topic', `this plug's MAC is ${socket.mac}`)
    const raw = payload.toString('utf8')
    const commands: SocketCommand[] = []
    if (raw !== '') {
      let json: unknown
      try {
        json = JSON.parse(raw)
      } catch (error) {
        return refuse('invalid_json', (error as Error).message)
      }
      if (part === 'config') {
        const config = json as Record<string, unknown> | null
        // The first MAC a plug announces for its own topic becomes its MAC.
        if (config?.t !== socket.topic) return refuse('foreign_topic', `discovery for topic ${String(config?.t)}, not ${socket.topic}`)
        commands.push({
          type: 'ReportInfo', source: 'discovery', mac, firmware_version: text.parse(config.sw), module: text.parse(config.md),
          hostname: text.parse(config.hn), ip_address: text.parse(config.ip)
        })
      } else {
        const reading = readEnergy(objectAt(json, 'sn')?.ENERGY)
        if (reading !== undefined) commands.push({ type: 'ReportEnergy', source: 'discovery', energy: reading })
      }
    }
    if (commands.length === 0) commands.push({ type: 'RecordMessage', topic: `tasmota/discovery/${mac}/${part}`, payload: raw })
    return { refused: false, streamId: device.streamId, decide () { return decideAll(socket.socket_id, commands) } }
  }

  return {
    kind: 'socket',

    interpretPublish (device, topic, payload) {
      const socket = sockets.socket(device.id)
      if (socket === undefined) return refuse('unknown_topic', 'unknown socket')
      const found = DISCOVERY.exec(topic)
      if (found !== null) return discovery(device, socket, found[1]!.toUpperCase(), found[2]!, payload)
      for (const prefix of ['stat', 'tele', 'cmnd'] as const) {
        const base = topicBase(socket.full_topic, prefix, socket.topic)
        if (!topic.startsWith(base)) continue
        const name = topic.slice(base.length)
        if (name === '' || name.includes('/')) break
        // A plug may query itself (stock firmware sends an empty POWER at every connect).
        const reading: Reading = prefix === 'cmnd'
          ? readingOf([{ type: 'CommandItself', command: name, payload: payload.toString('utf8') }])
          : readReport(prefix, name, payload, topic)
        if ('refused' in reading) return reading.refused
        return { refused: false, streamId: device.streamId, decide (tx: Transaction) { return decideAll(socket.socket_id, reading.commands(tx.now)) } }
      }
      if (topic.startsWith('cmnd/')) return refuse('foreign_topic', 'only the service commands other plugs and the group topic')
      return refuse('unknown_topic', `a plug publishes only under ${topicBase(socket.full_topic, 'stat', socket.topic)}, tele and cmnd of its own topic, and its discovery`)
    },

    refuseSubscription (device, filter) {
      const socket = sockets.socket(device.id)
      if (socket === undefined) return { reason: 'unknown_topic', detail: 'unknown socket' }
      // The group topic follows FullTopic; the fallback topic does not: it is always cmnd/<client id>_fb/.
      const allowed = [...[socket.topic, GROUP_TOPIC].map(topic => topicBase(socket.full_topic, 'cmnd', topic)), `cmnd/${device.clientId}_fb/`]
      if (allowed.some(base => filter.startsWith(base))) return null
      return { reason: 'foreign_topic', detail: `a plug subscribes only to its own, its group's and its fallback command topics` }
    },

    subscribed (device, topics) {
      const socket = sockets.socket(device.id)
      const own = socket === undefined ? undefined : topicBase(socket.full_topic, 'cmnd', socket.topic)
      if (own !== undefined && topics.some(topic => topic.startsWith(own))) listening(device.id)
    }
  }
}
