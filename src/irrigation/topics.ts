import { ValveCommandMessage, ValveStateMessage } from '../../events/irrigation.ts'
import type { MqttTopic } from '../docs/mqtt-topics.ts'

const zoneId = { zone_id: { description: 'The zone\'s identifier, which is also its valve controller\'s MQTT username.', example: '6f1c2a5e-8d3b-4c7a-9e21-3b5d7f9a1c4e' } }

/** A zone's valve controller: it is told what the valve should be, and says what it is. */
export const zoneTopics: readonly MqttTopic[] = [
  {
    kind: 'zone',
    topic: 'zones/{zone_id}/valve',
    direction: 'device receives',
    payload: ValveCommandMessage,
    description: 'What the valve should be, published QoS 1 and retained after every mode change: open in timer and manual mode. `since` and `to` are the run\'s local times (ISO 8601 without a zone), null in wait mode or for a manual run\'s end.',
    parameters: zoneId,
    qos: 1,
    retained: true,
    example: { open: true, mode: 'timer_mode', since: '2026-11-25T14:03:07.250', to: '2026-11-25T14:03:17.250' }
  },
  {
    kind: 'zone',
    topic: 'zones/{zone_id}/state',
    direction: 'device publishes',
    payload: ValveStateMessage,
    description: 'What the valve is. Report it after every change and at connect: a valve that still reports otherwise 5 s after a mode change is recorded as mismatched until it agrees.',
    parameters: zoneId,
    qos: 1,
    example: { open: true }
  }
]
