import { HomeAssistantCommand } from '../../events/home-assistant.ts'
import type { DomainEvent } from '../../events/index.ts'
import { refuse, type ConnectedDevice, type DeviceKind, type Interpretation, type Refusal } from '../broker/device-kind.ts'
import { SERVICE_STATUS_TOPIC, STATE_PREFIX, type HomeAssistantDeclaration } from './declaration.ts'
import { parseObjectId } from './discovery.ts'
import { homeAssistantKind } from './kind.ts'

export interface AccountAclOptions {
  /** HA_DISCOVERY: off, the account may do nothing. */
  enabled: boolean
  /** HA_DISCOVERY_PREFIX */
  prefix: string
  declarations: ReadonlyMap<string, HomeAssistantDeclaration>
  /** The network of a device of a declared kind, or of one removed since the service started (its empty config must still reach its network). */
  networkOf(kind: string, id: string): string | undefined
  /** Told which network each account that speaks belongs to (its birth message's republish needs it). */
  seen(accountId: string, networkId: string): void
}

const OFF: Refusal = { reason: 'foreign_topic', detail: 'Home Assistant discovery is off (HA_DISCOVERY)' }

/**
 * The ACL of a Home Assistant account, as a kind of MQTT identity: subscribe only under the
 * discovery prefix and `devicelog/ha/` for its network's devices; publish only
 * `<prefix>/status` and its network's devices' `set` topics; be sent only its own network's
 * configs and states, whatever the filter (Home Assistant subscribes with wildcards on a
 * prefix that several networks share). Devices may not publish under either prefix.
 */
export function accountKind ({ enabled, prefix, declarations, networkOf, seen }: AccountAclOptions): DeviceKind {
  const birthTopic = `${prefix}/status`
  const underPrefix = (topic: string) => topic.startsWith(`${prefix}/`)
  const underStates = (topic: string) => topic.startsWith(`${STATE_PREFIX}/`)

  /** `devicelog/ha/<kind>/<id>/<rest>` with literal kind and id: which device it names. */
  function stateDevice (topic: string): { kind: string, id: string, rest: string[] } | undefined {
    const [, , kind, id, ...rest] = topic.split('/')
    if (kind === undefined || id === undefined || rest.length === 0 || !declarations.has(kind)) return undefined
    if (kind === '+' || kind === '#' || id === '+' || id === '#') return undefined
    return { kind, id, rest }
  }

  /** The network a topic belongs to: a device's config, state, availability or commands, or a native plug topic. */
  function networkOfTopic (topic: string): string | undefined {
    if (underPrefix(topic)) {
      const levels = topic.slice(prefix.length + 1).split('/')
      if (levels.length !== 3 || levels[0] !== 'device' || levels[2] !== 'config') return undefined
      const named = parseObjectId(levels[1]!, declarations.keys())
      return named === undefined ? undefined : networkOf(named.kind, named.id)
    }
    if (underStates(topic)) {
      const named = stateDevice(topic)
      return named === undefined ? undefined : networkOf(named.kind, named.id)
    }
    for (const declaration of declarations.values()) {
      const owner = declaration.native?.owner(topic)
      if (owner !== undefined) return networkOf(declaration.kind, owner)
    }
    return undefined
  }

  // Recorded on the account's own stream, whatever came before.
  const accepted = (device: ConnectedDevice, decide: () => DomainEvent[]): Interpretation =>
    ({ refused: false, streamId: device.streamId, decide, stateless: true })

  return {
    kind: homeAssistantKind.kind,

    interpretPublish (device, topic, payload): Interpretation {
      if (!enabled) return refuse(OFF.reason, OFF.detail)
      seen(device.id, device.networkId)
      const text = payload.toString('utf8')
      const account_identifier = device.id
      if (topic === birthTopic) {
        if (text !== 'online' && text !== 'offline') return refuse('invalid_payload', `${birthTopic} is online or offline`)
        return accepted(device, () => [{ type: 'HomeAssistantStatusReported', data: { account_identifier, status: text } }])
      }
      const named = underStates(topic) ? stateDevice(topic) : undefined
      if (named !== undefined && named.rest.length === 1 && named.rest[0] === 'set') {
        if (networkOf(named.kind, named.id) !== device.networkId) return refuse('foreign_topic', `${topic}: no such device in this account's network`)
        const commands = declarations.get(named.kind)!.commands ?? []
        const command = HomeAssistantCommand.safeParse(text)
        if (!command.success || !commands.includes(command.data)) {
          return refuse('invalid_payload', commands.length === 0 ? `a ${named.kind} takes no commands` : `expected ${commands.join(' or ')}`)
        }
        return accepted(device, () => [{
          type: 'HomeAssistantCommandReceived',
          data: { account_identifier, device_kind: named.kind, device_identifier: named.id, command: command.data }
        }])
      }
      for (const declaration of declarations.values()) {
        const native = declaration.native
        const owner = native?.owner(topic)
        if (native === undefined || owner === undefined || !native.commandable(topic)) continue
        if (networkOf(declaration.kind, owner) !== device.networkId) break
        const excerpt = text.slice(0, 1024)
        return accepted(device, () => [{ type: 'HomeAssistantMessageRelayed', data: { account_identifier, device_identifier: owner, topic, payload: excerpt } }])
      }
      return refuse('foreign_topic', `a Home Assistant account publishes only ${birthTopic} and ${STATE_PREFIX}/<kind>/<id>/set of its network's devices`)
    },

    refuseSubscription (device, filter): Refusal | null {
      if (!enabled) return OFF
      seen(device.id, device.networkId)
      // Anything under the discovery prefix: what it delivers is narrowed to the network by forward().
      if (underPrefix(filter) || filter === SERVICE_STATUS_TOPIC) return null
      if (underStates(filter)) {
        const named = stateDevice(filter)
        if (named !== undefined && networkOf(named.kind, named.id) === device.networkId) return null
        return { reason: 'foreign_topic', detail: `${filter}: only ${STATE_PREFIX}/<kind>/<id>/... of this account's network's devices, without wildcards for the kind and id` }
      }
      for (const declaration of declarations.values()) {
        const native = declaration.native
        if (native === undefined) continue
        if (filter === native.discovery) return null
        const owner = native.owner(filter)
        if (owner !== undefined && networkOf(declaration.kind, owner) === device.networkId) return null
      }
      if (filter.startsWith('tasmota/')) {
        return { reason: 'foreign_topic', detail: `${filter}: Tasmota plugs are devicelog's (switches in its discovery); HA_TASMOTA=native leaves them to Home Assistant's Tasmota integration` }
      }
      return { reason: 'foreign_topic', detail: `${filter}: a Home Assistant account subscribes only under ${prefix}/ and ${STATE_PREFIX}/ for its network's devices` }
    },

    forward (device, topic): boolean {
      if (topic === SERVICE_STATUS_TOPIC) return true
      const network = networkOfTopic(topic)
      return network !== undefined && network === device.networkId
    },

    reserves: topic => underPrefix(topic) || underStates(topic) || topic === birthTopic
  }
}
