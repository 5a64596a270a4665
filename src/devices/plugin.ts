import fp from 'fastify-plugin'
import { z } from 'zod'
import type { DeviceKind } from '../broker/device-kind.ts'
import type { MqttTopic } from '../docs/mqtt-topics.ts'
import type { HomeAssistantDeclaration } from '../home-assistant/declaration.ts'
import type { DeviceKindDeclaration } from './kind.ts'
import { LiveChannels, type LiveChannel } from './live-channels.ts'
import { presenceStatus } from './presence-status.ts'
import { credentialDirectory } from './credential-directory.ts'
import { deviceQueries, type DeviceQueries } from './projections.ts'
import { registryQueries, type RegisteredDevice, type RegistryQueries } from './registry.ts'
import type { DeviceStateDeclaration } from './state-as-of.ts'

/** A device of any kind as the API shows it (GET /api/v1/devices), its kind one of the declared kinds. */
export const deviceViewSchema = (kinds: readonly string[]) => z.object({
  id: z.string(),
  kind: z.enum(kinds as [string, ...string[]]),
  name: z.string(),
  network_identifier: z.string(),
  online: z.boolean(),
  last_seen: z.string().nullable(),
  connected_since: z.string().nullable()
})
export type DeviceView = z.infer<ReturnType<typeof deviceViewSchema>>

/**
 * What a kind of device does in the running service, declared by its capability's plugin with its
 * kind (`app.deviceKinds.declare(sensorKind, { ... })`): with the kind's registration
 * (src/<capability>/kind.ts), the whole of what the shared parts know of it.
 */
export interface DeviceKindBehaviour {
  /** Its MQTT topics and ACL: how the broker reads what it publishes and what it may subscribe to. */
  mqtt: DeviceKind
  /** Its state, folded from its own stream (GET /api/v1/devices/<id>/state). */
  state: DeviceStateDeclaration
  /** Its live channels on /api/v1/devices/<id>/ws, beside the shared ones. */
  channels?: readonly LiveChannel[]
  /** Its topics and payloads as data: the AsyncAPI document (GET /docs/asyncapi.json). */
  topics: readonly MqttTopic[]
  /** How it appears in Home Assistant (HA_DISCOVERY). */
  homeAssistant?: HomeAssistantDeclaration
}

declare module 'fastify' {
  interface FastifyInstance {
    devices: DeviceQueries
    /** Every device of every kind, by id, stream and network. */
    deviceRegistry: RegistryQueries
    /** The kinds of device (src/kinds.ts), and a device as the API shows it. */
    deviceKinds: {
      names: readonly string[]
      View: ReturnType<typeof deviceViewSchema>
      view(device: RegisteredDevice): DeviceView
      /** A capability declares what its kind does: the broker, the channels, the state, the documents and Home Assistant derive from it. */
      declare(kind: DeviceKindDeclaration, behaviour: DeviceKindBehaviour): void
    }
    /** The live channels of `/api/v1/devices/<id>/ws`: the shared ones and those each capability declares. */
    deviceChannels: LiveChannels
    /** Each kind's fold of its own stream, as its capability declared it (GET /api/v1/devices/<id>/state). */
    deviceStates: { of(kind: string): DeviceStateDeclaration | undefined }
  }
}

export interface DevicesOptions {
  /** The kinds of device (src/kinds.ts `deviceKinds`): each must declare its MQTT kind and its state by the time the service is ready. */
  kinds: readonly DeviceKindDeclaration[]
  /** Every MQTT identity (devices and accounts, src/kinds.ts `identityKinds`): each must register its kind with the broker. */
  identities: readonly DeviceKindDeclaration[]
}

/** What every kind of device shares: credentials, refusals, redelivery detection, the registry, the state as of a moment. */
export default fp<DevicesOptions>(async function devicesPlugin (app, { kinds, identities }) {
  // Credentials are read from memory: one read per CONNECT, all at once after a power cut.
  const directory = credentialDirectory(app.store.db, app.store, identities)
  app.addHook('onClose', async () => directory.close())
  const devices: DeviceQueries = { ...deviceQueries(app.store.db), credentials: directory.credentials }
  const registry = registryQueries(app.store.db)
  const names = kinds.map(kind => kind.kind)
  app.decorate('devices', devices)
  app.decorate('deviceRegistry', registry)
  const channels = new LiveChannels()
  const declarations = new Map<string, DeviceStateDeclaration>()
  app.decorate('deviceKinds', {
    names,
    View: deviceViewSchema(names),
    view: (device: RegisteredDevice): DeviceView => ({
      id: device.device_id, kind: device.kind, name: device.name, network_identifier: device.network_id, ...presenceStatus(device, { registry, devices })
    }),
    declare (kind: DeviceKindDeclaration, behaviour: DeviceKindBehaviour) {
      if (!names.includes(kind.kind)) throw new Error(`the device kind ${kind.kind} is not in the list (src/kinds.ts)`)
      const parts = [['mqtt', behaviour.mqtt.kind], ['state', behaviour.state.kind], ['homeAssistant', behaviour.homeAssistant?.kind ?? kind.kind],
        ...behaviour.topics.map(topic => [`topic ${topic.topic}`, topic.kind])]
      for (const [part, name] of parts) {
        if (name !== kind.kind) throw new Error(`the device kind ${kind.kind} declares the ${part} of ${name}`)
      }
      if (declarations.has(kind.kind)) throw new Error(`the device kind ${kind.kind} is declared twice`)
      declarations.set(kind.kind, behaviour.state)
      app.broker.registerKind(behaviour.mqtt)
      channels.declare(...behaviour.channels ?? [])
      app.mqttTopics.declare(behaviour.topics)
      if (behaviour.homeAssistant !== undefined) app.homeAssistant.declare(behaviour.homeAssistant)
    }
  })
  app.decorate('deviceChannels', channels)
  app.decorate('deviceStates', { of: (kind: string) => declarations.get(kind) })
  // A kind in the list that its capability did not finish declaring is a start-up error, not a 500 later.
  app.addHook('onReady', async () => {
    for (const name of names) {
      if (!declarations.has(name)) throw new Error(`the device kind ${name} is in the list but its capability did not declare it (app.deviceKinds.declare)`)
    }
    for (const { kind } of identities) {
      if (!app.broker.hasKind(kind)) throw new Error(`the kind ${kind} has credentials but no MQTT behaviour (app.broker.registerKind)`)
    }
  })
}, { name: 'devices', dependencies: ['store'] })
