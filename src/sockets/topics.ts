import { z } from 'zod'
import { EnergyReading, Power } from '../../events/sockets.ts'
import type { MqttTopic } from '../docs/mqtt-topics.ts'
import { GROUP_TOPIC } from './mqtt.ts'

// Stock Tasmota's topics (13.x, 14.x), with the default FullTopic `%prefix%/%topic%/`: a socket
// registered with another full_topic uses that layout instead. Tasmota's JSON is Tasmota's contract:
// the service reads the fields below and keeps every other one, so these schemas are open.

const topic = { topic: { description: 'The plug\'s Tasmota Topic, which is also its MQTT username (POST /api/sockets).', example: 'kitchen-plug' } }
const time = z.string().optional()
const TasmotaEnergy = z.looseObject({ Time: time, ENERGY: EnergyReading })
/** Tasmota writes the relays as bits: 1 (or "1", "ON") is on. */
const RelayBits = z.union([Power, z.string(), z.number().int()])

const Result = z.looseObject({ POWER: Power.optional(), POWER1: Power.optional() })
const Status = z.looseObject({
  Status: z.looseObject({ DeviceName: z.string().optional(), Topic: z.string().optional(), Power: RelayBits.optional() }).optional(),
  StatusFWR: z.looseObject({ Version: z.string().optional() }).optional(),
  StatusNET: z.looseObject({ Hostname: z.string().optional(), IPAddress: z.string().optional() }).optional(),
  StatusSNS: z.looseObject({ Time: time, ENERGY: EnergyReading.optional() }).optional()
})
const Lwt = z.enum(['Online', 'Offline'])
const Telemetry = z.looseObject({ Time: time, POWER: Power.optional() })
const Info1 = z.looseObject({ Info1: z.looseObject({ Module: z.string().optional(), Version: z.string().optional() }) })
const Info2 = z.looseObject({ Info2: z.looseObject({ Hostname: z.string().optional(), IPAddress: z.string().optional() }) })
const Info3 = z.looseObject({ Info3: z.looseObject({ RestartReason: z.string().optional() }) })
const DiscoveryConfig = z.looseObject({
  t: z.string(), sw: z.string().optional(), md: z.string().optional(), hn: z.string().optional(), ip: z.string().optional(), mac: z.string().optional()
})
const DiscoverySensors = z.looseObject({ sn: TasmotaEnergy.partial() })
const QueryItself = z.literal('')
const StatusQuery = z.enum(['0', '10'])
const AnyCommand = z.string()

const energy = { Total: 12.345, Yesterday: 0.412, Today: 0.118, Power: 15, ApparentPower: 21, ReactivePower: 14, Factor: 0.72, Voltage: 231, Current: 0.091 }
const mac = { mac: { description: 'The plug\'s MAC address, 12 hexadecimal digits: the first one a plug announces for its own topic becomes its MAC.', example: 'AABBCCDDEEFF' } }
const other = 'Any other message under stat/ or tele/ of its topic is recorded as it is (SocketMessageReceived).'

export const socketTopics: readonly MqttTopic[] = [
  {
    kind: 'socket',
    topic: 'stat/{topic}/RESULT',
    direction: 'device publishes',
    payload: Result,
    description: 'The answer to a command; `POWER` (or `POWER1`) when a command or a press of the button switched the relay. The service waits for it after each POWER command.',
    parameters: topic,
    qos: 0,
    example: { POWER: 'ON' }
  },
  {
    kind: 'socket',
    topic: 'stat/{topic}/{relay}',
    direction: 'device publishes',
    payload: Power,
    contentType: 'text/plain',
    description: 'The relay\'s state after every change, plain text (`on`, `1` are read too). Tasmota reports each change on RESULT as well: it counts once.',
    parameters: { ...topic, relay: { description: 'POWER, or POWER1 with several relays.', enum: ['POWER', 'POWER1'], example: 'POWER' } },
    qos: 0,
    example: 'ON'
  },
  {
    kind: 'socket',
    topic: 'stat/{topic}/{status}',
    direction: 'device publishes',
    payload: Status,
    description: 'The answer to STATUS: `Status` (device name, relays), `StatusFWR` (firmware), `StatusNET` (host name, address) and `StatusSNS.ENERGY` (energy: STATUS10, STATUS8 on older firmware; STATUS0 has every part at once).',
    parameters: { ...topic, status: { description: 'STATUS, STATUS0, STATUS10 or STATUS8 (older firmware); other STATUSn are recorded as they are.', enum: ['STATUS', 'STATUS0', 'STATUS8', 'STATUS10'], example: 'STATUS0' } },
    qos: 0,
    example: {
      Status: { Module: 1, DeviceName: 'Kitchen', FriendlyName: ['Kitchen'], Topic: 'kitchen-plug', Power: '1' },
      StatusFWR: { Version: '14.2.0(release-tasmota)' },
      StatusNET: { Hostname: 'kitchen-plug-1234', IPAddress: '192.168.1.20' },
      StatusSNS: { Time: '2026-11-25T14:03:07', ENERGY: energy }
    }
  },
  {
    kind: 'socket',
    topic: 'tele/{topic}/SENSOR',
    direction: 'device publishes',
    payload: TasmotaEnergy,
    description: 'Telemetry every TelePeriod: the energy counters (`ENERGY.Total` in kWh, `Power` in W, ...), from which instances count their energy.',
    parameters: topic,
    qos: 0,
    example: { Time: '2026-11-25T14:03:07', ENERGY: energy }
  },
  {
    kind: 'socket',
    topic: 'tele/{topic}/STATE',
    direction: 'device publishes',
    payload: Telemetry,
    description: `Telemetry every TelePeriod: uptime, Wi-Fi, relays. Recorded as it is, not read. ${other}`,
    parameters: topic,
    qos: 0,
    example: { Time: '2026-11-25T14:03:07', Uptime: '0T01:00:00', UptimeSec: 3600, POWER: 'ON', Wifi: { SSId: 'garden', RSSI: 78 } }
  },
  {
    kind: 'socket',
    topic: 'tele/{topic}/LWT',
    direction: 'device publishes',
    payload: Lwt,
    contentType: 'text/plain',
    description: 'Availability, retained: `Online` at connect; `Offline` is the last will the broker publishes when the plug vanishes.',
    parameters: topic,
    qos: 1,
    retained: true,
    example: 'Online'
  },
  {
    kind: 'socket',
    topic: 'tele/{topic}/INFO1',
    direction: 'device publishes',
    payload: Info1,
    description: 'At connect: the module and firmware version.',
    parameters: topic,
    qos: 0,
    example: { Info1: { Module: 'Sonoff S26', Version: '14.2.0(release-tasmota)', FallbackTopic: 'cmnd/DVES_ABC123_fb/', GroupTopic: 'cmnd/tasmotas/' } }
  },
  {
    kind: 'socket',
    topic: 'tele/{topic}/INFO2',
    direction: 'device publishes',
    payload: Info2,
    description: 'At connect: the host name and IP address.',
    parameters: topic,
    qos: 0,
    example: { Info2: { WebServerMode: 'Admin', Hostname: 'kitchen-plug-1234', IPAddress: '192.168.1.20' } }
  },
  {
    kind: 'socket',
    topic: 'tele/{topic}/INFO3',
    direction: 'device publishes',
    payload: Info3,
    description: 'At connect: why the plug restarted.',
    parameters: topic,
    qos: 0,
    example: { Info3: { RestartReason: 'Software/System restart', BootCount: 12 } }
  },
  {
    kind: 'socket',
    topic: 'tasmota/discovery/{mac}/config',
    direction: 'device publishes',
    payload: DiscoveryConfig,
    description: 'Tasmota\'s discovery (SetOption19 0), retained: `t` must be the plug\'s own topic; firmware, module, host name and address are read.',
    parameters: mac,
    qos: 0,
    retained: true,
    example: { ip: '192.168.1.20', dn: 'Kitchen', hn: 'kitchen-plug-1234', mac: 'AABBCCDDEEFF', md: 'Sonoff S26', ty: 0, sw: '14.2.0', t: 'kitchen-plug', ft: '%prefix%/%topic%/', tp: ['cmnd', 'stat', 'tele'] }
  },
  {
    kind: 'socket',
    topic: 'tasmota/discovery/{mac}/sensors',
    direction: 'device publishes',
    payload: DiscoverySensors,
    description: 'Tasmota\'s discovery of its sensors, retained: the energy counters are read.',
    parameters: mac,
    qos: 0,
    retained: true,
    example: { sn: { Time: '2026-11-25T14:03:07', ENERGY: energy }, ver: 1 }
  },
  {
    kind: 'socket',
    topic: 'cmnd/{topic}/POWER',
    direction: 'device publishes',
    payload: QueryItself,
    contentType: 'text/plain',
    description: 'A plug may command itself: stock firmware sends an empty POWER (a query) at every connect. Any command it sends to its own topic is recorded (SocketCommanded, by the device).',
    parameters: topic,
    qos: 0,
    example: ''
  },
  {
    kind: 'socket',
    topic: 'cmnd/{topic}/POWER',
    direction: 'device receives',
    payload: Power,
    contentType: 'text/plain',
    description: 'Switch the relay, QoS 1, not retained: ON when the first instance starts, OFF when the last stops or at an emergency stop. Until the plug reports what it should be, it is sent again when it subscribes and every SOCKET_RESEND_SECONDS.',
    parameters: topic,
    qos: 1,
    example: 'OFF'
  },
  {
    kind: 'socket',
    topic: 'cmnd/{topic}/STATUS',
    direction: 'device receives',
    payload: StatusQuery,
    contentType: 'text/plain',
    description: 'Status queries, QoS 1: `0` (everything) when the plug subscribes to its commands, `10` (energy) for a reading at each instance\'s start and stop, and every 5 s while one runs.',
    parameters: topic,
    qos: 1,
    example: '0'
  },
  {
    kind: 'socket',
    topic: `cmnd/${GROUP_TOPIC}/{command}`,
    direction: 'device receives',
    payload: AnyCommand,
    contentType: 'text/plain',
    description: 'Tasmota\'s default GroupTopic: commands to every plug at once. A plug may subscribe (stock firmware does); only the service may publish here, and it sends nothing today.',
    parameters: { command: { description: 'A Tasmota command.', example: 'POWER' } },
    qos: 1,
    example: 'OFF'
  },
  {
    kind: 'socket',
    topic: 'cmnd/{client_id}_fb/{command}',
    direction: 'device receives',
    payload: AnyCommand,
    contentType: 'text/plain',
    description: 'Tasmota\'s fallback topic, from its MQTT client id. A plug may subscribe (stock firmware does); the service sends nothing here.',
    parameters: {
      client_id: { description: 'The plug\'s MQTT client id (Tasmota: DVES_ and the end of its MAC).', example: 'DVES_ABC123' },
      command: { description: 'A Tasmota command.', example: 'POWER' }
    },
    qos: 1,
    example: 'OFF'
  }
]
