import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { EventOf, EventType } from '../../events/index.ts'
import type { Timer } from '../clock.ts'
import type { RegisteredDevice } from '../devices/registry.ts'
import { isoTime } from '../store/chain.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { accountKind } from './account.ts'
import { homeAssistantKind } from './kind.ts'
import { availabilityTopic, SERVICE_STATUS_TOPIC, stateTopic, type HomeAssistantDeclaration } from './declaration.ts'
import { configTopic, discoveryConfig, objectIdOf, parseObjectId } from './discovery.ts'
import accountRoutes from './routes.ts'

export type TasmotaMode = 'devicelog' | 'native'

/** Where the capabilities declare how their kinds appear in Home Assistant; a no-op while discovery is off. */
export interface HomeAssistantRegistry {
  readonly enabled: boolean
  /** HA_TASMOTA: `native` leaves plugs to Home Assistant's Tasmota integration. */
  readonly tasmota: TasmotaMode
  declare(declaration: HomeAssistantDeclaration): void
}

declare module 'fastify' {
  interface FastifyInstance {
    homeAssistant: HomeAssistantRegistry
  }
}

export interface HomeAssistantOptions {
  /** HA_DISCOVERY */
  enabled: boolean
  /** HA_DISCOVERY_PREFIX */
  prefix: string
  /** HA_TASMOTA */
  tasmota: TasmotaMode
  /** Shown as the origin's version (COMMIT_SHA). */
  version: string
}

/** After Home Assistant's birth message, configs are published again this long after, at random (as its documentation asks, so that a fleet of publishers does not answer at once). */
const REPUBLISH_MIN_MS = 500
const REPUBLISH_SPREAD_MS = 2000
const PRESENCE_TYPES: readonly EventType[] = ['DeviceConnected', 'DeviceDisconnected']
/**
 * A command recorded but not run when the node that recorded it stopped is run by the node that
 * takes the timers, if it is this recent: a switch turned on much later than asked would surprise.
 */
const COMMAND_RECOVERY_MS = 60_000
/** The correlation id of what a command decided: how a node that takes over knows it was run. */
const commandCorrelation = (received: RecordedEvent) => `home_assistant_command:${received.position}`

/**
 * Home Assistant MQTT discovery, published by the service: every device's config (device-based
 * discovery), state and availability, all derived from the log's projections (read when Home
 * Assistant subscribes, published again after each commit that changes them), and the accounts
 * Home Assistant connects with. Shared: it knows the capabilities only through their declarations.
 */
async function homeAssistant (app: FastifyInstance, { enabled, prefix, tasmota, version }: HomeAssistantOptions) {
  const declarations = new Map<string, HomeAssistantDeclaration>()
  const registry = app.deviceRegistry
  /** Devices whose config was published or read, by stream: a device gone from the registry was removed. */
  const known = new Map<string, RegisteredDevice>()
  /** Removed devices' networks, by `<kind>/<id>`: their empty config is for their network only. */
  const removed = new Map<string, string>()
  /** Each account's network, as its clients connected with it. */
  const accountNetworks = new Map<string, string>()

  const networkOf = (kind: string, id: string): string | undefined => {
    const device = registry.device(id)
    return device !== undefined && device.kind === kind ? device.network_id : removed.get(`${kind}/${id}`)
  }
  // Registered whatever HA_DISCOVERY says: an account's credentials exist in the log either way.
  app.broker.registerKind(accountKind({ enabled, prefix, declarations, networkOf, seen: (account, network) => accountNetworks.set(account, network) }))
  app.decorate('homeAssistant', {
    enabled,
    tasmota,
    declare (declaration: HomeAssistantDeclaration) {
      if (!enabled) return
      if (declarations.has(declaration.kind)) throw new Error(`${declaration.kind} is declared to Home Assistant twice`)
      declarations.set(declaration.kind, declaration)
    }
  })
  if (!enabled) return
  await app.register(accountRoutes, { discoveryPrefix: prefix })

  // The retained topics that span a kind read its devices from the registry.
  const devicesOfKind = registry.devicesOfKind
  const deviceOfKind = (kind: string, id: string): RegisteredDevice | undefined => {
    const device = registry.device(id)
    return device?.kind === kind ? device : undefined
  }

  const configOf = (device: RegisteredDevice): string | undefined => {
    const declaration = declarations.get(device.kind)
    if (declaration === undefined) return undefined
    known.set(device.stream_id, device)
    return JSON.stringify(discoveryConfig(device, declaration, { version }))
  }
  const stateOf = (device: RegisteredDevice) => JSON.stringify(declarations.get(device.kind)!.state(device.device_id))
  const availabilityOf = (device: RegisteredDevice) => app.devices.presence(device.stream_id).online ? 'online' : 'offline'

  /** The config last published (or read) for each object id: an unchanged one is not published again after a commit. */
  const published = new Map<string, string>()
  const publish = (topic: string, payload: string) =>
    app.broker.publish({ topic, payload, qos: 1, retain: true })
      .catch(error => app.log.warn({ err: error, topic }, 'could not publish to Home Assistant'))

  const publishConfig = (device: RegisteredDevice, always = false) => {
    const objectId = objectIdOf(device.kind, device.device_id)
    const config = configOf(device)
    if (config === undefined || (!always && published.get(objectId) === config)) return
    published.set(objectId, config)
    return publish(configTopic(prefix, objectId), config)
  }
  /** A device gone from the registry; its empty retained config, published `here`, removes it from Home Assistant. */
  const forget = (device: RegisteredDevice, here: boolean) => {
    removed.set(`${device.kind}/${device.device_id}`, device.network_id)
    known.delete(device.stream_id)
    const objectId = objectIdOf(device.kind, device.device_id)
    published.delete(objectId)
    if (here) void publish(configTopic(prefix, objectId), '')
  }

  app.addHook('onReady', async () => {
    // The service's own retained topics are projections: read when Home Assistant subscribes.
    app.broker.ownRetained({
      topics: configTopic(prefix, '+'),
      qos: 1,
      one: objectId => {
        const named = parseObjectId(objectId, declarations.keys())
        const device = named === undefined ? undefined : deviceOfKind(named.kind, named.id)
        return device === undefined ? undefined : configOf(device)
      },
      all: () => [...declarations.keys()].flatMap(kind => devicesOfKind(kind).map(device => [objectIdOf(kind, device.device_id), configOf(device)!] as const))
    })
    for (const kind of declarations.keys()) {
      for (const [topics, read] of [[stateTopic(kind, '+'), stateOf], [availabilityTopic(kind, '+'), availabilityOf]] as const) {
        app.broker.ownRetained({
          topics,
          qos: 1,
          one: id => {
            const device = deviceOfKind(kind, id)
            return device === undefined ? undefined : read(device)
          },
          all: () => devicesOfKind(kind).map(device => [device.device_id, read(device)] as const)
        })
      }
      for (const device of devicesOfKind(kind)) known.set(device.stream_id, device)
    }
    await publish(SERVICE_STATUS_TOPIC, 'online')
  })
  // The service is offline when its last node stops: while another runs, Home Assistant keeps
  // every entity (the devices on this node reconnect to the others through the balancer).
  app.broker.beforeClose(async () => {
    if (!await app.timers.lastToLeave().catch(() => true)) return
    await publish(SERVICE_STATUS_TOPIC, 'offline')
  })

  // What each commit changes: configs, states and availability of the devices it touched.
  const watched = new Set<string>(PRESENCE_TYPES)
  app.addHook('onReady', async () => {
    for (const declaration of declarations.values()) for (const type of [...declaration.stateTypes, ...declaration.configTypes]) watched.add(type)
  })
  const timers = new Set<Timer>()
  const republish = (networkId: string) => {
    const timer = app.clock.setTimeout(() => {
      timers.delete(timer)
      for (const device of registry.devicesOf(networkId)) {
        if (!declarations.has(device.kind)) continue
        void publishConfig(device, true)
        void publish(availabilityTopic(device.kind, device.device_id), availabilityOf(device))
        void publish(stateTopic(device.kind, device.device_id), stateOf(device))
      }
    }, REPUBLISH_MIN_MS + Math.random() * REPUBLISH_SPREAD_MS)
    timers.add(timer)
  }

  /** Commands being run now, by the position of their record. */
  const running = new Set<number>()
  const runCommand = (received: RecordedEvent) => {
    const { account_identifier: account, device_kind: kind, device_identifier: id, command } = received.data as EventOf<'HomeAssistantCommandReceived'>['data']
    const declaration = declarations.get(kind)
    if (declaration?.command === undefined || deviceOfKind(kind, id) === undefined) return
    running.add(received.position)
    // Decided by the device's own decider, as the HTTP API's commands are, with the account as actor.
    declaration.command(id, command, { actor: `home_assistant:${account}`, correlation_id: commandCorrelation(received) })
      .catch(error => app.log.warn({ err: error, kind, id, command }, 'a command from Home Assistant failed'))
      .finally(() => running.delete(received.position))
  }
  /**
   * Run by the node that takes the timers (at start on one node): the recent commands whose device
   * stream holds nothing they caused. Their node stopped between recording and running them; the
   * commands are absolute (ON, OFF, OPEN, CLOSE), so one that did run but decided nothing is
   * decided again to nothing.
   */
  const runMissedCommands = () => {
    const since = isoTime(app.clock.now() - COMMAND_RECOVERY_MS)
    // Past this node's head, a command's commit has not reached its listener yet, which runs it.
    const head = app.store.headPosition
    for (const account of app.devices.identities(homeAssistantKind.kind)) {
      for (const received of app.store.read({ stream: account.stream_id, type: 'HomeAssistantCommandReceived', since })) {
        if (received.position > head || running.has(received.position)) continue
        const { device_kind: kind, device_identifier: id } = received.data as EventOf<'HomeAssistantCommandReceived'>['data']
        const device = deviceOfKind(kind, id)
        if (device === undefined) continue
        const correlation = commandCorrelation(received)
        if (app.store.read({ stream: device.stream_id, after: received.position }).some(event => event.metadata.correlation_id === correlation)) continue
        app.log.info({ kind, id, position: received.position }, 'running a command from Home Assistant that its node recorded but did not run')
        runCommand(received)
      }
    }
  }
  // Once every capability has declared its kinds (their commands are theirs).
  app.addHook('onReady', async () => {
    if (enabled) app.timers.own('home-assistant commands', () => { runMissedCommands(); return () => {} })
  })

  // Another node's commit (the log in PostgreSQL) changes what this node knows; its publishes and
  // commands were made by the node that committed it, once for every broker bridged by Redis.
  const unsubscribe = app.store.subscribe((events, { here }) => {
    const touched = new Map<string, Set<string>>()
    for (const event of events) {
      if (!here && event.type.startsWith('HomeAssistant')) continue
      if (event.type === 'HomeAssistantStatusReported') {
        const network = accountNetworks.get(event.data.account_identifier)
        if (event.data.status === 'online' && network !== undefined) republish(network)
      } else if (event.type === 'HomeAssistantCommandReceived') {
        // After the commit that recorded it: an effect, not part of the unit that accepted it.
        runCommand(event)
      } else if (watched.has(event.type)) {
        let types = touched.get(event.stream_id)
        if (types === undefined) touched.set(event.stream_id, types = new Set())
        types.add(event.type)
      }
    }
    for (const [stream, types] of touched) {
      const device = registry.deviceOfStream(stream)
      if (device === undefined) {
        const gone = known.get(stream)
        if (gone !== undefined) forget(gone, here)
        continue
      }
      const declaration = declarations.get(device.kind)
      if (declaration === undefined) continue
      if (!here) {
        known.set(device.stream_id, device)
        published.delete(objectIdOf(device.kind, device.device_id))
        continue
      }
      const has = (list: readonly string[]) => list.some(type => types.has(type))
      if (has(declaration.configTypes)) void publishConfig(device)
      if (has(PRESENCE_TYPES)) void publish(availabilityTopic(device.kind, device.device_id), availabilityOf(device))
      if (has(declaration.stateTypes)) void publish(stateTopic(device.kind, device.device_id), stateOf(device))
    }
  })
  app.addHook('preClose', async () => {
    unsubscribe()
    for (const timer of timers) timer.cancel()
  })
}

export default fp(homeAssistant, { name: 'home-assistant', dependencies: ['store', 'timer-owner', 'devices', 'broker'] })
