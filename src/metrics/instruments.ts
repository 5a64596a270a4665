import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { BrokerObserver } from '../broker/broker.ts'

/** Fast enough to see a group commit's fsync, long enough to see a stalled disk. */
const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
/** Units of work per group: GROUP_COMMIT_MAX's default is 200; larger settings show in the last buckets. */
const GROUP_SIZE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]

/**
 * Every instrument the service keeps, in one registry of its own (not prom-client's global one:
 * tests run several services in one process). Updated in memory where the thing happens; a
 * scrape reads them, and no database.
 */
export function createInstruments (registry: Registry) {
  const registers = [registry]
  // Event loop lag, process memory, CPU, handles, GC: prom-client's own, under their usual names.
  collectDefaultMetrics({ register: registry })
  return {
    messagesReceived: new Counter({
      name: 'devicelog_mqtt_messages_received_total',
      help: 'PUBLISH packets from devices that reached the broker\'s authorization, by device kind',
      labelNames: ['kind'] as const,
      registers
    }),
    messagesCommitted: new Counter({
      name: 'devicelog_mqtt_messages_committed_total',
      help: 'Device messages whose events were committed to the log, by device kind',
      labelNames: ['kind'] as const,
      registers
    }),
    messagesRefused: new Counter({
      name: 'devicelog_mqtt_messages_refused_total',
      help: 'Device messages refused (recorded as MessageRejected, or counted into a summary like one on record), by device kind and reason',
      labelNames: ['kind', 'reason'] as const,
      registers
    }),
    messagesRedelivered: new Counter({
      name: 'devicelog_mqtt_messages_redelivered_total',
      help: 'Redeliveries (DUP) of a message already in the log: acknowledged again, not recorded twice, by device kind',
      labelNames: ['kind'] as const,
      registers
    }),
    messagesFailed: new Counter({
      name: 'devicelog_mqtt_messages_failed_total',
      help: 'Device messages the log could not record (storage fault): not acknowledged, the device resends, by device kind',
      labelNames: ['kind'] as const,
      registers
    }),
    acknowledgementSeconds: new Histogram({
      name: 'devicelog_mqtt_acknowledgement_seconds',
      help: 'From a QoS 1 PUBLISH reaching authorizePublish to its PUBACK being allowed (after the commit of its events), by device kind',
      labelNames: ['kind'] as const,
      buckets: SECONDS_BUCKETS,
      registers
    }),
    connectedDevices: new Gauge({
      name: 'devicelog_mqtt_connected_devices',
      help: 'MQTT connections of devices now, by device kind',
      labelNames: ['kind'] as const,
      registers
    }),
    commitGroupSize: new Histogram({
      name: 'devicelog_log_commit_group_size',
      help: 'Units of work committed together in one transaction (group commit)',
      buckets: GROUP_SIZE_BUCKETS,
      registers
    }),
    commitSeconds: new Histogram({
      name: 'devicelog_log_commit_duration_seconds',
      help: 'A group\'s transaction in the writer thread, from BEGIN to the end of COMMIT: inserts, projections, fsync',
      buckets: SECONDS_BUCKETS,
      registers
    })
  }
}
export type Instruments = ReturnType<typeof createInstruments>

/** The broker's observer: each call one in-memory update. */
export function brokerObserver (instruments: Instruments): BrokerObserver {
  const { messagesReceived, messagesCommitted, messagesRefused, messagesRedelivered, messagesFailed, acknowledgementSeconds, connectedDevices } = instruments
  return {
    received: kind => messagesReceived.inc({ kind }),
    settled (kind, outcome, reason) {
      switch (outcome) {
        case 'recorded': return messagesCommitted.inc({ kind })
        case 'refused':
        case 'repeated': return messagesRefused.inc({ kind, reason: reason ?? 'unknown' })
        case 'duplicate': return messagesRedelivered.inc({ kind })
        case 'failed': return messagesFailed.inc({ kind })
        default: {
          const unexpected: never = outcome
          return unexpected
        }
      }
    },
    acknowledged: (kind, seconds) => acknowledgementSeconds.observe({ kind }, seconds),
    connected: kind => connectedDevices.inc({ kind }),
    disconnected: kind => connectedDevices.dec({ kind })
  }
}
