import fp from 'fastify-plugin'
import { z } from 'zod'
import type { DeviceKindDeclaration } from './kind.ts'
import { LiveChannels } from './live-channels.ts'
import { presenceStatus } from './presence-status.ts'
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

declare module 'fastify' {
  interface FastifyInstance {
    devices: DeviceQueries
    /** Every device of every kind, by id, stream and network. */
    deviceRegistry: RegistryQueries
    /** The kinds of device (src/kinds.ts), and a device as the API shows it. */
    deviceKinds: { names: readonly string[], View: ReturnType<typeof deviceViewSchema>, view(device: RegisteredDevice): DeviceView }
    /** The live channels of `/api/v1/devices/<id>/ws`: the shared ones and those each capability declares. */
    deviceChannels: LiveChannels
    /** Each kind's fold of its own stream, declared by its capability (GET /api/v1/devices/<id>/state). */
    deviceStates: {
      declare(declaration: DeviceStateDeclaration): void
      of(kind: string): DeviceStateDeclaration | undefined
    }
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
  const devices = deviceQueries(app.store.db)
  const registry = registryQueries(app.store.db)
  const names = kinds.map(kind => kind.kind)
  app.decorate('devices', devices)
  app.decorate('deviceRegistry', registry)
  app.decorate('deviceKinds', {
    names,
    View: deviceViewSchema(names),
    view: (device: RegisteredDevice): DeviceView => ({
      id: device.device_id, kind: device.kind, name: device.name, network_identifier: device.network_id, ...presenceStatus(device, { registry, devices })
    })
  })
  app.decorate('deviceChannels', new LiveChannels())
  const declarations = new Map<string, DeviceStateDeclaration>()
  app.decorate('deviceStates', {
    declare (declaration: DeviceStateDeclaration) { declarations.set(declaration.kind, declaration) },
    of: (kind: string) => declarations.get(kind)
  })
  // A kind in the list that its capability did not finish declaring is a start-up error, not a 500 later.
  app.addHook('onReady', async () => {
    for (const name of names) {
      if (!declarations.has(name)) throw new Error(`the device kind ${name} declares no state (app.deviceStates.declare)`)
    }
    for (const { kind } of identities) {
      if (!app.broker.hasKind(kind)) throw new Error(`the kind ${kind} has credentials but no MQTT behaviour (app.broker.registerKind)`)
    }
  })
}, { name: 'devices', dependencies: ['store'] })
