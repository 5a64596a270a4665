import type { HomeAssistantDeclaration } from '../home-assistant/declaration.ts'
import type { HostQueries } from './projections.ts'

const bytes = (name: string, state_class: 'measurement' | 'total_increasing') =>
  ({ platform: 'sensor' as const, name, options: { device_class: 'data_size', unit_of_measurement: 'B', state_class } })

/** A host in Home Assistant: its CPU, memory and network, from its agent's latest metrics. */
export function hostHomeAssistant (hosts: HostQueries): HomeAssistantDeclaration {
  return {
    kind: 'host',
    model: 'Host agent',
    configTypes: ['HostRegistered'],
    stateTypes: ['MetricsReported'],
    components: () => ({
      cpu: { platform: 'sensor', name: 'CPU', options: { unit_of_measurement: '%', state_class: 'measurement' } },
      memory_used: bytes('Memory used', 'measurement'),
      memory_total: bytes('Memory total', 'measurement'),
      // The agent's counters since it started: a restart resets them, which total_increasing allows.
      network_received: bytes('Network received', 'total_increasing'),
      network_sent: bytes('Network sent', 'total_increasing')
    }),
    state (hostId) {
      const latest = hosts.history(hostId, 1)[0]
      return {
        cpu: latest?.cpu_usage ?? null,
        memory_used: latest?.memory_usage ?? null,
        memory_total: latest?.memory_total ?? null,
        network_received: latest?.network_rx ?? null,
        network_sent: latest?.network_tx ?? null
      }
    }
  }
}
