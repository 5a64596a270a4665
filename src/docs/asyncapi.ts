import { z } from 'zod'
import type { MqttTopic } from './mqtt-topics.ts'

export interface AsyncApiOptions {
  title: string
  version: string
  /** Where devices connect: the MQTT port on the host the document was asked from, and MQTT over WebSocket. */
  host: string
  mqttPort: number
  webSocketHost: string
}

/** `measurements/{sensor_id}` of a sensor → `sensor.measurements.sensor_id`: a key JSON pointers need not escape. */
const channelKey = (topic: MqttTopic) => `${topic.kind}.${topic.topic.replace(/[{}]/g, '').replace(/[^A-Za-z0-9_-]+/g, '.')}`
const messageKey = (topic: MqttTopic) => topic.direction === 'device publishes' ? 'published' : 'received'

/**
 * The payload's JSON schema, draft 7 (AsyncAPI's schema format is its superset). What a device
 * publishes is read by the schema (its input); what it receives is what the service wrote (its output).
 */
function payloadSchema (topic: MqttTopic): Record<string, unknown> {
  const { $schema: _, ...schema } = z.toJSONSchema(topic.payload, {
    target: 'draft-7',
    io: topic.direction === 'device publishes' ? 'input' : 'output',
    unrepresentable: 'any'
  }) as Record<string, unknown>
  return schema
}

/**
 * The AsyncAPI 3 document of every MQTT topic the capabilities declared, written for firmware
 * authors: the application it describes is a device, so `send` is what a device publishes and
 * `receive` what it subscribes to.
 */
export function asyncApiDocument (topics: readonly MqttTopic[], options: AsyncApiOptions) {
  const channels: Record<string, Record<string, any>> = {}
  const operations: Record<string, unknown> = {}
  for (const topic of topics) {
    const key = channelKey(topic)
    const channel = channels[key] ??= {
      address: topic.topic,
      title: `${topic.topic} (${topic.kind})`,
      messages: {},
      ...(Object.keys(topic.parameters).length === 0
        ? {}
        : {
            parameters: Object.fromEntries(Object.entries(topic.parameters).map(([name, parameter]) => [name, {
              description: parameter.description,
              ...(parameter.enum === undefined ? {} : { enum: [...parameter.enum] }),
              ...(parameter.example === undefined ? {} : { examples: [parameter.example] })
            }]))
          }),
      tags: [{ name: topic.kind }]
    }
    channel.description = channel.description === undefined ? topic.description : `${channel.description}\n\n${topic.description}`
    const message = messageKey(topic)
    channel.messages[message] = {
      name: message,
      title: `${topic.topic}, ${topic.direction === 'device publishes' ? 'from' : 'to'} a ${topic.kind}`,
      contentType: topic.contentType ?? 'application/json',
      payload: payloadSchema(topic),
      examples: [{ payload: topic.example }],
      bindings: { mqtt: { payloadFormatIndicator: 1, bindingVersion: '0.2.0' } }
    }
    const action = topic.direction === 'device publishes' ? 'send' : 'receive'
    operations[`${key}.${action}`] = {
      action,
      channel: { $ref: `#/channels/${key}` },
      messages: [{ $ref: `#/channels/${key}/messages/${message}` }],
      summary: `A ${topic.kind} ${topic.direction === 'device publishes' ? 'publishes to' : 'receives on'} ${topic.topic}`,
      description: topic.description,
      tags: [{ name: topic.kind }],
      bindings: { mqtt: { qos: topic.qos, retain: topic.retained ?? false, bindingVersion: '0.2.0' } }
    }
  }
  const kinds = [...new Set(topics.map(topic => topic.kind))]
  return {
    asyncapi: '3.0.0' as const,
    info: {
      title: options.title,
      version: options.version,
      description: [
        'Every MQTT topic a device publishes to or receives on, and its payload. Written for firmware authors:',
        'the application described is a device, so `send` is what a device publishes and `receive` what it',
        'subscribes to (the service publishes it). A device connects with the username and password it was',
        'registered with and may use only its own topics: anything else is refused and recorded (SUBACK 0x80 for',
        'a subscription; a refused QoS 1 message is acknowledged but not delivered). A QoS 1 message is',
        'acknowledged only once it is recorded. Generated from the payload schemas the service validates with.'
      ].join(' '),
      tags: kinds.map(kind => ({ name: kind }))
    },
    defaultContentType: 'application/json',
    servers: {
      mqtt: {
        host: `${options.host}:${options.mqttPort}`,
        protocol: 'mqtt',
        protocolVersion: '3.1.1',
        description: 'The embedded broker, MQTT over TCP (MQTT_PORT). MQTT 3.1.1 and 5.',
        security: [{ $ref: '#/components/securitySchemes/device' }]
      },
      websocket: {
        host: options.webSocketHost,
        pathname: '/mqtt',
        protocol: 'ws',
        description: 'The same broker, MQTT over WebSocket on the HTTP port.',
        security: [{ $ref: '#/components/securitySchemes/device' }]
      }
    },
    channels,
    operations,
    components: {
      securitySchemes: {
        device: {
          type: 'userPassword',
          description: 'The credentials shown once when the device is registered: the username is the device\'s identifier (a Tasmota plug: its Topic; a charger: its charger id).'
        }
      }
    }
  }
}
