import type { EventOf } from '../../events/index.ts'
import { NetworkNotFound } from '../errors.ts'

// A host agent's reports: each accepted message is one event. Registration needs the caller to
// be a member of the network; the rest is the agent describing itself.

type Report<T extends 'SystemInfoReported' | 'ProcessesReported' | 'NetworkInterfacesReported' | 'MetricsReported'> =
  Omit<EventOf<T>['data'], 'device_identifier'>

export type HostCommand =
  | { type: 'RegisterHost', device_identifier: string, name: string, network_identifier: string, mqtt_password_sha256: string }
  | ({ type: 'ReportSystemInfo' } & Report<'SystemInfoReported'>)
  | ({ type: 'ReportProcesses' } & Report<'ProcessesReported'>)
  | ({ type: 'ReportNetworkInterfaces' } & Report<'NetworkInterfacesReported'>)
  | ({ type: 'ReportMetrics' } & Report<'MetricsReported'>)

export type HostEvent = EventOf<'HostRegistered' | 'SystemInfoReported' | 'ProcessesReported' | 'NetworkInterfacesReported' | 'MetricsReported'>

export function decideHost (deviceId: string, command: HostCommand, context: { networkAllowed: boolean } = { networkAllowed: true }): HostEvent[] {
  const { type, ...data } = command
  switch (type) {
    case 'RegisterHost':
      if (!context.networkAllowed) throw new NetworkNotFound()
      return [{ type: 'HostRegistered', data: data as EventOf<'HostRegistered'>['data'] }]
    case 'ReportSystemInfo':
      return [{ type: 'SystemInfoReported', data: { device_identifier: deviceId, ...(data as Report<'SystemInfoReported'>) } }]
    case 'ReportProcesses':
      return [{ type: 'ProcessesReported', data: { device_identifier: deviceId, ...(data as Report<'ProcessesReported'>) } }]
    case 'ReportNetworkInterfaces':
      return [{ type: 'NetworkInterfacesReported', data: { device_identifier: deviceId, ...(data as Report<'NetworkInterfacesReported'>) } }]
    case 'ReportMetrics':
      return [{ type: 'MetricsReported', data: { device_identifier: deviceId, ...(data as Report<'MetricsReported'>) } }]
    default: {
      const unreachable: never = type
      throw new Error(`unknown command ${JSON.stringify(unreachable)}`)
    }
  }
}
