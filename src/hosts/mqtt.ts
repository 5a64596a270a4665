import type { z } from 'zod'
import { MetricsMessage, NetworkInterfacesMessage, ProcessesMessage, SystemInfoMessage } from '../../events/hosts.ts'
import { readPayload, refuse, type DeviceKind } from '../broker/device-kind.ts'
import { decideHost, type HostCommand } from './decider.ts'

/** The four topics of a host agent, `devices/<id>/<channel>`, each with its schema and command. */
const channels = {
  'system-info': { schema: SystemInfoMessage, command: (m: z.infer<typeof SystemInfoMessage>): HostCommand => ({ type: 'ReportSystemInfo', system_info: m }) },
  processes: { schema: ProcessesMessage, command: (m: z.infer<typeof ProcessesMessage>): HostCommand => ({ type: 'ReportProcesses', ...m }) },
  'network-interfaces': { schema: NetworkInterfacesMessage, command: (m: z.infer<typeof NetworkInterfacesMessage>): HostCommand => ({ type: 'ReportNetworkInterfaces', ...m }) },
  metrics: { schema: MetricsMessage, command: (m: z.infer<typeof MetricsMessage>): HostCommand => ({ type: 'ReportMetrics', ...m }) }
} as const

/** A host agent publishes its own `devices/<id>/...` and subscribes to nothing. */
export function hostDeviceKind (): DeviceKind {
  return {
    kind: 'host',
    interpretPublish (device, topic, payload) {
      const [root, id, name, ...rest] = topic.split('/')
      const channel = root === 'devices' && name !== undefined && rest.length === 0 && Object.hasOwn(channels, name)
        ? channels[name as keyof typeof channels]
        : undefined
      if (channel === undefined) return refuse('unknown_topic', 'a host publishes to devices/<own id>/system-info, processes, network-interfaces or metrics')
      if (id !== device.id) return refuse('foreign_topic', `${topic} belongs to another device`)
      const read = readPayload(payload, channel.schema)
      if (!read.ok) return read
      const command = channel.command(read.message as never)
      return { refused: false, streamId: device.streamId, decide () { return decideHost(device.id, command) } }
    },
    refuseSubscription () {
      return { reason: 'unknown_topic', detail: 'the service sends hosts nothing' }
    }
  }
}
