import type { EventType, Metadata } from '../../events/index.ts'
import type { HomeAssistantCommand } from '../../events/home-assistant.ts'

/** Every state Home Assistant reads is under this prefix, whatever the discovery prefix. */
export const STATE_PREFIX = 'devicelog/ha'
/** Service-wide availability: `online` at start, `offline` at stop. */
export const SERVICE_STATUS_TOPIC = `${STATE_PREFIX}/status`

export const stateTopic = (kind: string, id: string) => `${STATE_PREFIX}/${kind}/${id}/state`
export const availabilityTopic = (kind: string, id: string) => `${STATE_PREFIX}/${kind}/${id}/availability`
export const commandTopic = (kind: string, id: string) => `${STATE_PREFIX}/${kind}/${id}/set`

/**
 * One entity of a device, as its capability describes it: the platform, its name, and Home
 * Assistant's options with full key names (device_class, unit_of_measurement, state_class,
 * options, payloads). The shared part adds unique_id, default_entity_id, the topics and the
 * value template, which reads the state key named like the component.
 */
export interface ComponentSpec {
  platform: 'sensor' | 'switch' | 'valve'
  name: string
  /** The component takes commands on the device's `set` topic. */
  commands?: boolean
  options?: Record<string, string | number | boolean | string[] | null>
}

/** What a state value may be: null is read by Home Assistant as unknown (the template renders `None`). */
export type StateValue = string | number | null

/**
 * With HA_TASMOTA=native, a plug belongs to Home Assistant's Tasmota integration: its topics are
 * open to the account of its network.
 */
export interface NativeTopics {
  /** The integration's discovery filter (`tasmota/discovery/#`): allowed, and what it delivers is filtered per network. */
  readonly discovery: string
  /** The device a topic (or a filter whose device levels are literal) belongs to, if any. */
  owner(topic: string): string | undefined
  /** Whether Home Assistant may publish on this topic of that device (its commands). */
  commandable(topic: string): boolean
}

/**
 * How a kind of device appears in Home Assistant, declared by its capability
 * (`src/<capability>/home-assistant.ts`) with its kind (`app.deviceKinds.declare`), which hands it to `app.homeAssistant.declare`.
 */
export interface HomeAssistantDeclaration {
  /** As the device registry names it; its topics are `devicelog/ha/<kind>/<id>/...`. */
  readonly kind: string
  /** Shown as the device's model in Home Assistant. */
  readonly model: string
  /** Events of a device's stream after which its state is published again. */
  readonly stateTypes: readonly EventType[]
  /** Events of a device's stream after which its components may have changed (its registration, a new field). */
  readonly configTypes: readonly EventType[]
  /** The device's components, keyed by component id ([a-z0-9_]); the same keys name its state's values. */
  components(deviceId: string): Record<string, ComponentSpec>
  /** The device's state, one value per component that reads one. */
  state(deviceId: string): Record<string, StateValue>
  /** What Home Assistant may ask on `set`, and how it is decided (with the account as actor). */
  readonly commands?: readonly HomeAssistantCommand[]
  command?(deviceId: string, command: HomeAssistantCommand, metadata: Metadata): Promise<void>
  readonly native?: NativeTopics
}

/** A component id or state key from a free name: `[a-z0-9_]`, and a short hash where the name lost characters. */
export function componentKey (name: string): string {
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '') || 'value'
  if (slug === name) return slug
  let hash = 0
  for (const char of name) hash = (Math.imul(hash, 31) + char.codePointAt(0)!) >>> 0
  return `${slug}_${hash.toString(16).padStart(8, '0').slice(0, 6)}`
}
