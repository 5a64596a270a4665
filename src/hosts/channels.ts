import type { LiveChannel } from '../devices/live-channels.ts'
import type { RegisteredDevice } from '../devices/registry.ts'
import type { HostQueries } from './projections.ts'

/** The dashboard's charts: the last 30 points. */
export const HISTORY_POINTS = 30
/** `02:05 PM`, as the reference formats its chart labels. */
const chartTime = (iso: string) => new Date(iso).toLocaleTimeString('en-US', { hour: '2-digit', minute: '2-digit' })
const MiB = 1024 * 1024

/** A host agent's live channels on `/api/v1/devices/<id>/ws`. */
export function hostChannels (hosts: HostQueries): LiveChannel[] {
  const history = (device: RegisteredDevice) => {
    const points = hosts.history(device.device_id, HISTORY_POINTS)
    return {
      cpu: points.map(p => ({ time: chartTime(p.recorded_at), value: Math.round(p.cpu_usage) })),
      memory: points.map(p => ({ time: chartTime(p.recorded_at), used: Math.round(p.memory_usage / MiB), available: Math.round((p.memory_total - p.memory_usage) / MiB) })),
      network: points.map(p => ({ time: chartTime(p.recorded_at), download: p.network_rx, upload: p.network_tx }))
    }
  }
  return [
    { name: 'system-info', types: ['SystemInfoReported'], view: e => e.type === 'SystemInfoReported' ? e.data.system_info : undefined },
    { name: 'processes', types: ['ProcessesReported'], view: e => e.type === 'ProcessesReported' ? { top_processes: e.data.top_processes } : undefined },
    { name: 'network-interfaces', types: ['NetworkInterfacesReported'], view: e => e.type === 'NetworkInterfacesReported' ? { interfaces: e.data.interfaces } : undefined },
    { name: 'history', types: ['MetricsReported'], readsProjections: true, view: (_e, device) => history(device), empty: history },
    {
      // The reference's own dashboard subscribes to it: each metrics report as the agent sent it.
      name: 'metrics',
      types: ['MetricsReported'],
      view: e => {
        if (e.type !== 'MetricsReported') return undefined
        const { device_identifier: _, ...metrics } = e.data
        return metrics
      }
    }
  ]
}
