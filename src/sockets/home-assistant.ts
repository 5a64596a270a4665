import type { Metadata } from '../../events/index.ts'
import type { HomeAssistantCommand } from '../../events/home-assistant.ts'
import type { ComponentSpec, HomeAssistantDeclaration, NativeTopics } from '../home-assistant/declaration.ts'
import type { PlugControl } from './plug-control.ts'
import { energyOf, type SocketQueries } from './projections.ts'

const DISCOVERY = 'tasmota/discovery/#'
const DISCOVERY_TOPIC = /^tasmota\/discovery\/([0-9A-Fa-f]{12})\//
const PREFIXES = new Set(['cmnd', 'stat', 'tele'])

/** A plug's energy: its power in W and its total in kWh, as Tasmota counts them. */
const SENSORS: Record<string, ComponentSpec> = {
  power: { platform: 'sensor', name: 'Power', options: { device_class: 'power', unit_of_measurement: 'W', state_class: 'measurement' } },
  energy: { platform: 'sensor', name: 'Energy', options: { device_class: 'energy', unit_of_measurement: 'kWh', state_class: 'total_increasing' } }
}

export interface SocketHomeAssistantOptions {
  sockets: SocketQueries
  control: PlugControl
  /** HA_TASMOTA: `native` leaves the switch to Home Assistant's Tasmota integration and opens the plug's topics to it. */
  tasmota: 'devicelog' | 'native'
}

/**
 * A plug in Home Assistant: a switch (device class outlet) whose commands go through the same
 * plug control as the HTTP API's instances, and its power and energy.
 */
export function socketHomeAssistant ({ sockets, control, tasmota }: SocketHomeAssistantOptions): HomeAssistantDeclaration {
  const native = tasmota === 'native'

  /**
   * ON starts an instance (as POST /instance does) unless one runs; OFF stops every running one
   * (the last one switches it off), or, with none running (it was pressed on), switches it off.
   */
  async function command (socketId: string, command: HomeAssistantCommand, metadata: Metadata): Promise<void> {
    const socket = sockets.socket(socketId)
    if (socket === undefined) return
    const state = sockets.state(socket)
    const running = state.status === 'registered' ? state.running : []
    if (command === 'ON' && running.length === 0) {
      await control.startInstance(socket, { timeoutMs: null, durationSeconds: null, callbacks: [], metadata })
    } else if (command === 'OFF' && running.length > 0) {
      for (const instance of running) await control.stopInstance(socket, instance, 'requested', metadata)
    } else if (command === 'OFF') {
      await control.switchOff(socket, metadata)
    }
  }

  /** With HA_TASMOTA=native: the plug a topic (or filter) belongs to, by its Tasmota topic or its discovery MAC. */
  const nativeTopics: NativeTopics = {
    discovery: DISCOVERY,
    owner (topic) {
      const discovered = DISCOVERY_TOPIC.exec(topic)
      if (discovered !== null) return sockets.macOwner(discovered[1]!.toUpperCase())
      const [prefix, plugTopic] = topic.split('/')
      if (prefix === undefined || plugTopic === undefined || !PREFIXES.has(prefix)) return undefined
      return sockets.byTopic(plugTopic)?.socket_id
    },
    commandable: topic => topic.startsWith('cmnd/')
  }

  return {
    kind: 'socket',
    model: 'Tasmota plug',
    configTypes: ['SocketRegistered'],
    stateTypes: ['PowerReported', 'EnergyReported'],
    components: () => native
      ? SENSORS
      : { switch: { platform: 'switch', name: 'Power switch', commands: true, options: { device_class: 'outlet', payload_on: 'ON', payload_off: 'OFF' } }, ...SENSORS },
    state (socketId) {
      const socket = sockets.socket(socketId)
      const state = socket === undefined ? undefined : sockets.state(socket)
      const energy = energyOf(socket?.last_energy ?? null)
      return {
        switch: state?.status === 'registered' ? state.power : null,
        power: energy?.Power ?? null,
        energy: energy?.Total ?? null
      }
    },
    ...(native ? { native: nativeTopics } : { commands: ['ON', 'OFF'] as const, command })
  }
}
