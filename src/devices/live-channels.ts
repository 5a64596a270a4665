import type { EventType } from '../../events/index.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { presenceStatus } from './presence-status.ts'
import type { DeviceQueries } from './projections.ts'
import { SEEN_TYPES, type RegisteredDevice, type RegistryQueries } from './registry.ts'

/** What every channel's view may read; a capability's channels close over their own queries. */
export interface ChannelContext {
  registry: RegistryQueries
  devices: DeviceQueries
}

/**
 * A live channel is data: the event types that update it, and the message each one becomes.
 * Its snapshot is the message of the latest such event on the device's stream.
 */
export interface LiveChannel {
  readonly name: string
  readonly types: readonly EventType[]
  view(event: RecordedEvent, device: RegisteredDevice, context: ChannelContext): unknown
  /** When no event of the channel exists yet. */
  empty?(device: RegisteredDevice, context: ChannelContext): unknown
  /**
   * The view reads the projections, which hold a whole committed group by the time it is
   * pushed: one update per group then, with the position of the group's last such event.
   */
  readsProjections?: boolean
  /**
   * At most one update per device this often, except for the listed types (always pushed at
   * once); an update held back is pushed when the interval ends.
   */
  throttle?: { ms: number, except: readonly EventType[] }
}

/** The channels every kind of device has; each capability declares its own (`src/<capability>/channels.ts`). */
const sharedChannels: readonly LiveChannel[] = [
  {
    // Connects and disconnects are pushed at once; the device's reports move last_seen, and
    // are pushed at most every 10 s (a sensor reporting 10 times a second is not 10 pushes).
    name: 'status',
    types: SEEN_TYPES,
    view: (_e, device, context) => presenceStatus(device, context),
    empty: presenceStatus,
    readsProjections: true,
    throttle: { ms: 10_000, except: ['DeviceConnected', 'DeviceDisconnected'] }
  },
  /** Every event of the device's stream as it commits (no snapshot): for views that re-read an API. */
  { name: 'events', types: [], view: e => ({ type: e.type, recorded_at: e.recorded_at, data: e.data }) }
]

/** Every channel, by name and by the event types that update it: the shared ones and those the capabilities declare. */
export class LiveChannels {
  private readonly byName = new Map<string, LiveChannel>()
  private readonly byType = new Map<string, LiveChannel[]>()
  readonly everyEvent: LiveChannel

  constructor () {
    for (const channel of sharedChannels) this.declare(channel)
    this.everyEvent = this.byName.get('events')!
  }

  declare (...channels: LiveChannel[]): void {
    for (const channel of channels) {
      if (this.byName.has(channel.name)) throw new Error(`the live channel ${channel.name} is declared twice`)
      this.byName.set(channel.name, channel)
      for (const type of channel.types) this.byType.set(type, [...(this.byType.get(type) ?? []), channel])
    }
  }

  named (name: string): LiveChannel | undefined { return this.byName.get(name) }
  updatedBy (type: string): readonly LiveChannel[] { return this.byType.get(type) ?? [] }
  get names (): string[] { return [...this.byName.keys()] }
}
