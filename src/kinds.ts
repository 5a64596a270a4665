import { z } from 'zod'
import { chargerKind } from './chargers/kind.ts'
import { homeAssistantKind } from './home-assistant/kind.ts'
import { hostKind } from './hosts/kind.ts'
import { zoneKind } from './irrigation/kind.ts'
import { sensorKind } from './sensors/kind.ts'
import { socketKind } from './sockets/kind.ts'

/**
 * Every kind of MQTT identity the service knows, each declared by its capability: credentials,
 * the device registry, stream access, the API's and the console's kind enum derive from this
 * list. A new kind of device is a folder with its `kind.ts`, and one line here.
 */
export const deviceKinds = [
  sensorKind,
  socketKind,
  zoneKind,
  chargerKind,
  hostKind
] as const

/** MQTT identities that are not devices (an integration's account): they have credentials, not a place in the device list. */
export const accountKinds = [homeAssistantKind] as const

/** Every identity the broker authenticates. */
export const identityKinds = [...deviceKinds, ...accountKinds]

/** The kind of a device, as the API and the console name it. */
export type DeviceKindName = (typeof deviceKinds)[number]['kind']
export const DeviceKindName = z.enum(deviceKinds.map(kind => kind.kind) as [DeviceKindName, ...DeviceKindName[]])
