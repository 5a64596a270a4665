import type { RegisteredDevice } from '../devices/registry.ts'
import { availabilityTopic, commandTopic, SERVICE_STATUS_TOPIC, stateTopic, type HomeAssistantDeclaration } from './declaration.ts'

// Device-based discovery (Home Assistant 2024.11 and later): one retained config per device on
// `<prefix>/device/<object id>/config`, with full key names, `device`, `origin`, `components`
// and the availability every component shares.

const OBJECT_ID_PREFIX = 'devicelog_'

/**
 * A device's object id: `devicelog_<kind>_<id>` within `[a-zA-Z0-9_-]` (Home Assistant's topic
 * matcher), escaped so that it reads back: `_` is `__`, any other character `_x<hex>_`.
 */
export function objectIdOf (kind: string, id: string): string {
  let escaped = ''
  for (const char of id) {
    if (/[A-Za-z0-9-]/.test(char)) escaped += char
    else if (char === '_') escaped += '__'
    else escaped += `_x${char.codePointAt(0)!.toString(16)}_`
  }
  return `${OBJECT_ID_PREFIX}${kind}_${escaped}`
}

/** The kind and id an object id names, for one of these kinds; undefined for any other. */
export function parseObjectId (objectId: string, kinds: Iterable<string>): { kind: string, id: string } | undefined {
  for (const kind of kinds) {
    const head = `${OBJECT_ID_PREFIX}${kind}_`
    if (!objectId.startsWith(head)) continue
    const escaped = objectId.slice(head.length)
    const id = escaped.replace(/__|_x([0-9a-f]+)_/g, (match, hex?: string) => hex === undefined ? '_' : String.fromCodePoint(parseInt(hex, 16)))
    if (id !== '' && objectIdOf(kind, id) === objectId) return { kind, id }
  }
  return undefined
}

/** `<prefix>/device/<object id>/config` */
export const configTopic = (prefix: string, objectId: string) => `${prefix}/device/${objectId}/config`

/** Home Assistant's entity ids: `<platform>.<object id>`, lower case letters, digits and `_`, no `_` at either end. */
const slug = (text: string) => text.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '')

export interface DiscoveryOrigin {
  /** The service's version (COMMIT_SHA), shown by Home Assistant beside the origin's name. */
  version: string
}

/** The device-based discovery config of one device, with every key spelled out. */
export function discoveryConfig (device: RegisteredDevice, declaration: HomeAssistantDeclaration, { version }: DiscoveryOrigin) {
  const objectId = objectIdOf(device.kind, device.device_id)
  const entityBase = slug(device.name) || slug(objectId)
  const components: Record<string, Record<string, unknown>> = {}
  for (const [key, spec] of Object.entries(declaration.components(device.device_id))) {
    components[key] = {
      platform: spec.platform,
      unique_id: `${objectId}_${key}`,
      // Replaces the deprecated object_id: the full entity id Home Assistant starts from.
      default_entity_id: `${spec.platform}.${entityBase}_${key}`,
      name: spec.name,
      state_topic: stateTopic(device.kind, device.device_id),
      value_template: `{{ value_json['${key}'] }}`,
      ...(spec.commands === true ? { command_topic: commandTopic(device.kind, device.device_id) } : {}),
      ...spec.options
    }
  }
  return {
    device: {
      identifiers: [objectId],
      name: device.name,
      manufacturer: 'devicelog',
      model: declaration.model,
      serial_number: device.device_id
    },
    origin: { name: 'devicelog', sw_version: version },
    // Unavailable when the service stops or the device is not connected.
    availability: [
      { topic: SERVICE_STATUS_TOPIC, payload_available: 'online', payload_not_available: 'offline' },
      { topic: availabilityTopic(device.kind, device.device_id), payload_available: 'online', payload_not_available: 'offline' }
    ],
    availability_mode: 'all',
    qos: 1,
    components
  }
}
export type DiscoveryConfig = ReturnType<typeof discoveryConfig>
