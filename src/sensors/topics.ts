import { ConfigurationMessage, HeartbeatsMessage, LogMessagesMessage, MeasurementsMessage } from '../../events/sensors.ts'
import type { MqttTopic } from '../docs/mqtt-topics.ts'

const sensorId = { sensor_id: { description: 'The sensor\'s identifier, which is also its MQTT username: a sensor uses only its own topics.', example: '0a71a8d8-40c6-4086-a64e-58e38350cb53' } }
const batch = 'A batch of 1 to 1000 items. QoS 1: the PUBACK comes once the batch is recorded; a batch that does not match is refused whole and recorded as a rejection.'

/** The sensor network's four topics, as the reference's README gives them. */
export const sensorTopics: readonly MqttTopic[] = [
  {
    kind: 'sensor',
    topic: 'heartbeats/{sensor_id}',
    direction: 'device publishes',
    payload: HeartbeatsMessage,
    description: `Heartbeats: the configuration revision the sensor runs and whether it applied it. The first heartbeat for a revision acknowledges it. ${batch}`,
    parameters: sensorId,
    qos: 1,
    example: { heartbeats: [{ revision: 0, timestamp: 1674677601.9, success: true }] }
  },
  {
    kind: 'sensor',
    topic: 'measurements/{sensor_id}',
    direction: 'device publishes',
    payload: MeasurementsMessage,
    description: `Measurements: any JSON object per item, keyed by the sensor's own timestamp (Unix seconds). ${batch}`,
    parameters: sensorId,
    qos: 1,
    example: { measurements: [{ revision: 0, timestamp: 1674677601.9, value: { temperature: 21.5, humidity: 40 } }] }
  },
  {
    kind: 'sensor',
    topic: 'log-messages/{sensor_id}',
    direction: 'device publishes',
    payload: LogMessagesMessage,
    description: `Log messages with a severity (debug, info, warning, error) and a subject; warnings and errors are aggregated. ${batch}`,
    parameters: sensorId,
    qos: 1,
    example: { log_messages: [{ severity: 'error', revision: 0, timestamp: 1674677601.9, subject: 'The CPU is burning', details: 'Please call the fire department' }] }
  },
  {
    kind: 'sensor',
    topic: 'configurations/{sensor_id}',
    direction: 'device receives',
    payload: ConfigurationMessage,
    description: 'The sensor\'s current configuration and its revision, published QoS 1 and retained at registration and at every revision (PUT /sensors/<id>): a sensor that subscribes gets the latest at once. It acknowledges a revision with a heartbeat carrying it.',
    parameters: sensorId,
    qos: 1,
    retained: true,
    example: { revision: 1, configuration: { interval: 5 } }
  }
]
