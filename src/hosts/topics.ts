import { MetricsMessage, NetworkInterfacesMessage, ProcessesMessage, SystemInfoMessage } from '../../events/hosts.ts'
import type { MqttTopic } from '../docs/mqtt-topics.ts'

const deviceId = { device_id: { description: 'The host\'s device identifier (POST /api/v1/devices), which is also its agent\'s MQTT username.', example: '3d9e4b2a-1c5f-4e8d-a7b6-0f2e9c8d7a61' } }

/** A host agent's four reports; it is sent nothing. */
export const hostTopics: readonly MqttTopic[] = [
  {
    kind: 'host',
    topic: 'devices/{device_id}/system-info',
    direction: 'device publishes',
    payload: SystemInfoMessage,
    description: 'The computer\'s system: agents differ, so every field is optional and others are kept.',
    parameters: deviceId,
    qos: 1,
    example: { os: 'Debian GNU/Linux 13', architecture: 'x64', uptime: 86400, hostname: 'nas', ipAddress: '192.168.1.10', macAddress: 'aa:bb:cc:dd:ee:ff' }
  },
  {
    kind: 'host',
    topic: 'devices/{device_id}/processes',
    direction: 'device publishes',
    payload: ProcessesMessage,
    description: 'The top processes (at most 500), each an object of the agent\'s choosing.',
    parameters: deviceId,
    qos: 1,
    example: { top_processes: [{ pid: 1234, name: 'node', cpu: 12.5, memory: 104857600 }] }
  },
  {
    kind: 'host',
    topic: 'devices/{device_id}/network-interfaces',
    direction: 'device publishes',
    payload: NetworkInterfacesMessage,
    description: 'The network interfaces (at most 500), each an object of the agent\'s choosing.',
    parameters: deviceId,
    qos: 1,
    example: { interfaces: [{ name: 'eth0', address: '192.168.1.10', mac: 'aa:bb:cc:dd:ee:ff' }] }
  },
  {
    kind: 'host',
    topic: 'devices/{device_id}/metrics',
    direction: 'device publishes',
    payload: MetricsMessage,
    description: 'CPU in percent, memory in bytes, network counters in bytes: the metrics history and the dashboard\'s charts.',
    parameters: deviceId,
    qos: 1,
    example: { cpu_usage: 12.5, memory_usage: 2147483648, memory_total: 8589934592, network_rx: 123456789, network_tx: 98765432 }
  }
]
