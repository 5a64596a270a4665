import { z } from 'zod'
import { defineEvent } from './define.ts'

// Stream: `host-<device id>`. A computer whose agent reports its system, processes, network
// interfaces and metrics (the device metrics dashboard's data), each message as one event.

export const HostRegistered = defineEvent('HostRegistered', 1, z.object({
  device_identifier: z.uuid(),
  name: z.string(),
  network_identifier: z.uuid(),
  mqtt_password_sha256: z.string()
}))

const text = z.string().max(1000)
/** `devices/<id>/system-info`: agents differ, so every field is optional and others pass. */
export const SystemInfoMessage = z.looseObject({
  os: text.optional(),
  architecture: text.optional(),
  uptime: z.number().nonnegative().optional(),
  hostname: text.optional(),
  ipAddress: text.optional(),
  macAddress: text.optional()
})
export const ProcessesMessage = z.object({ top_processes: z.array(z.record(z.string(), z.unknown())).max(500) })
export const NetworkInterfacesMessage = z.object({ interfaces: z.array(z.record(z.string(), z.unknown())).max(500) })
const amount = z.number().finite().nonnegative()
/** `devices/<id>/metrics`: CPU in percent, memory in bytes, network counters in bytes. */
export const MetricsMessage = z.object({
  cpu_usage: amount.max(100),
  memory_usage: amount,
  memory_total: amount,
  network_rx: amount,
  network_tx: amount
})

export const SystemInfoReported = defineEvent('SystemInfoReported', 1, z.object({
  device_identifier: z.uuid(),
  system_info: SystemInfoMessage
}))
export const ProcessesReported = defineEvent('ProcessesReported', 1, z.object({
  device_identifier: z.uuid(),
  ...ProcessesMessage.shape
}))
export const NetworkInterfacesReported = defineEvent('NetworkInterfacesReported', 1, z.object({
  device_identifier: z.uuid(),
  ...NetworkInterfacesMessage.shape
}))
export const MetricsReported = defineEvent('MetricsReported', 1, z.object({
  device_identifier: z.uuid(),
  ...MetricsMessage.shape
}))
