import type { FastifyBaseLogger } from 'fastify'
import type { Metadata } from '../../events/index.ts'
import type { DeviceBrokerDecorator } from '../broker/plugin.ts'
import type { Clock, Timer } from '../clock.ts'
import type { EventStore } from '../store/event-store.ts'
import { commandedOpen, decideZone, initialZoneState, type ZoneCommand, type ZoneEvent } from './decider.ts'
import { valveTopic } from './mqtt.ts'
import type { ZoneQueries, ZoneRow } from './projections.ts'
import { valveMessage } from './views.ts'

/** How long a valve has to follow a mode change before the zone shows a mismatch. */
export const VALVE_GRACE_MS = 5000

const ZONE_EVENTS = new Set(['ZoneRegistered', 'ManualModeStarted', 'TimerModeStarted', 'ZoneRunEnded', 'ValveStateReported', 'ValveMismatchDetected'])
const MODE_EVENTS = new Set(['ZoneRegistered', 'ManualModeStarted', 'TimerModeStarted', 'ZoneRunEnded'])

export interface ZoneControlOptions {
  store: EventStore
  broker: DeviceBrokerDecorator
  clock: Clock
  zones: ZoneQueries
  log: FastifyBaseLogger
}

/**
 * Runs the zones: decides commands on a zone's stream, publishes the valve command after each
 * committed mode change, and keeps each zone's two timers (the end of a timer run, the valve's
 * 5 s to follow) as due times read from the projection: at start, and after every commit.
 */
export function createZoneControl ({ store, broker, clock, zones, log }: ZoneControlOptions) {
  const timers = new Map<string, Timer>()
  const changeListeners = new Set<(zone: ZoneRow) => void>()
  /** Whether this node runs the zones' timers (app.timers: with several nodes, one of them does). */
  let running = false

  function decide (zoneId: string, command: ZoneCommand, metadata: Metadata = { actor: 'system' }): Promise<ZoneEvent[]> {
    return store.handle({ state: () => zones.zone(zoneId)?.state ?? initialZoneState(), decide: decideZone }, `zone-${zoneId}`, command, metadata)
  }

  function at (key: string, dueMs: number, fire: () => Promise<unknown>) {
    timers.get(key)?.cancel()
    timers.set(key, clock.setTimeout(() => {
      timers.delete(key)
      fire().catch(error => log.warn({ err: error, timer: key }, 'a zone timer failed'))
    }, dueMs - clock.now()))
  }
  const cancel = (key: string) => { timers.get(key)?.cancel(); timers.delete(key) }

  function schedule ({ zone_id: zoneId, state }: ZoneRow) {
    const { to, changed_at: changedAt } = state
    if (state.mode === 'timer_mode' && to !== null) at(`${zoneId}:timer`, to, () => decide(zoneId, { type: 'CompleteTimer', due_at: to }))
    else cancel(`${zoneId}:timer`)
    if (changedAt !== null && !state.valve_mismatch && state.reported_open !== commandedOpen(state.mode)) {
      at(`${zoneId}:valve`, changedAt + VALVE_GRACE_MS, () => decide(zoneId, { type: 'CheckValve', changed_at: changedAt }))
    } else {
      cancel(`${zoneId}:valve`)
    }
  }

  // Retained, so a controller that connects later gets the latest: the broker reads it from
  // the projection when the controller subscribes. A change is published to the subscribed ones.
  broker.ownRetained({
    topics: valveTopic('+'),
    qos: 1,
    one: zoneId => {
      const zone = zones.zone(zoneId)
      return zone === undefined ? undefined : JSON.stringify(valveMessage(zone.state))
    },
    all: () => zones.all().map(zone => [zone.zone_id, JSON.stringify(valveMessage(zone.state))] as const)
  })
  const publishValve = (zone: ZoneRow) =>
    broker.publish({ topic: valveTopic(zone.zone_id), payload: JSON.stringify(valveMessage(zone.state)), qos: 1, retain: true })
      .catch(error => log.error({ err: error, zone: zone.zone_id }, 'could not publish a valve command'))

  /** The timers of every zone, as the log left them (what fell due meanwhile fires at once); returns what stops them. */
  function start (): () => void {
    running = true
    for (const zone of zones.all()) schedule(zone)
    return () => {
      running = false
      for (const timer of timers.values()) timer.cancel()
      timers.clear()
    }
  }

  const unsubscribe = store.subscribe((events, { here }) => {
    const changed = new Map<string, boolean>()
    for (const event of events) {
      if (!ZONE_EVENTS.has(event.type)) continue
      const zoneId = (event.data as { zone_identifier: string }).zone_identifier
      changed.set(zoneId, (changed.get(zoneId) ?? false) || MODE_EVENTS.has(event.type))
    }
    for (const [zoneId, modeChanged] of changed) {
      const zone = zones.zone(zoneId)
      if (zone === undefined) continue
      if (running) schedule(zone)
      if (modeChanged && here) void publishValve(zone)
      for (const listener of changeListeners) listener(zone)
    }
  })

  return {
    start,
    decide,
    /** Called after each commit that touched a zone, with its state then. */
    onChange (listener: (zone: ZoneRow) => void): () => void {
      changeListeners.add(listener)
      return () => changeListeners.delete(listener)
    },
    close () {
      unsubscribe()
      for (const timer of timers.values()) timer.cancel()
      timers.clear()
      changeListeners.clear()
    }
  }
}
export type ZoneControl = ReturnType<typeof createZoneControl>
