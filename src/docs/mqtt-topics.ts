import type { z } from 'zod'

/** A variable level of a topic: `{sensor_id}` in `measurements/{sensor_id}`. */
export interface TopicParameter {
  readonly description: string
  /** The only values it takes, when there are few (Tasmota's `STATUS`, `STATUS0`, ...). */
  readonly enum?: readonly string[]
  readonly example?: string
}

/**
 * One MQTT topic a kind of device uses, as data: declared by its capability
 * (`src/<capability>/topics.ts`, with its kind: `app.deviceKinds.declare`), documented in the AsyncAPI
 * document at /docs/asyncapi.json, and checked against the real broker by test/docs.test.ts.
 */
export interface MqttTopic {
  /** The device kind whose credentials use it: sensor, socket, zone, charger, host. */
  readonly kind: string
  /** The topic, `{name}` for each level that varies. */
  readonly topic: string
  /** The device publishes to it, or subscribes to it and receives what the service publishes. */
  readonly direction: 'device publishes' | 'device receives'
  /** Its payload's schema: events/' own where the payload is ours, read loosely where it is Tasmota's. */
  readonly payload: z.ZodType
  /** JSON unless said otherwise (Tasmota's plain-text `ON`, `Online`, ...). */
  readonly contentType?: 'application/json' | 'text/plain'
  readonly description: string
  readonly parameters: Readonly<Record<string, TopicParameter>>
  /** The QoS the service publishes with, or that a device should publish with (QoS 1: acknowledged once recorded). */
  readonly qos: 0 | 1
  readonly retained?: boolean
  /** A payload as it goes over the wire: text for text/plain, else JSON. */
  readonly example: unknown
}

/** The `{name}` levels of a topic. */
export const topicParameters = (topic: string): string[] => [...topic.matchAll(/\{([^}]+)\}/g)].map(match => match[1]!)

/** Every topic the capabilities declared, in declaration order. */
export class MqttTopics {
  private readonly declared: MqttTopic[] = []

  declare (topics: readonly MqttTopic[]): void {
    for (const topic of topics) {
      const named = topicParameters(topic.topic)
      const described = Object.keys(topic.parameters)
      if (named.length !== described.length || named.some(name => !described.includes(name))) {
        throw new Error(`the MQTT topic ${topic.topic} (${topic.kind}) describes the parameters ${described.join(', ') || 'none'}, not ${named.join(', ') || 'none'}`)
      }
      if (this.declared.some(other => other.kind === topic.kind && other.topic === topic.topic && other.direction === topic.direction)) {
        throw new Error(`the MQTT topic ${topic.topic} (${topic.kind}, ${topic.direction}) is declared twice`)
      }
      this.declared.push(topic)
    }
  }

  get all (): readonly MqttTopic[] { return this.declared }
}
