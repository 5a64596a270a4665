import type { WebSocket } from 'ws'
import { sendBounded, type Ticker } from '../live/websocket.ts'
import type { ZoneQueries, ZoneRow } from './projections.ts'
import { localIso, stateOf } from './views.ts'
import type { ZoneControl } from './zone-control.ts'

type Audience = Map<string, Set<WebSocket>>

/**
 * The zones' WebSocket clients. The reference's `/ws` gets its whole message every second;
 * `/api/v1/zones/<zone>/ws` gets the clock every second and the state only when it changes.
 * One ticker serves every client: each tick's clock message is serialised once.
 */
export function createZoneLive (ticker: Ticker, control: ZoneControl, zones: ZoneQueries) {
  const channels: Audience = new Map()
  const reference: Audience = new Map()
  /** The state last pushed to each zone's channel clients: a commit that did not change it sends nothing. */
  const lastState = new Map<string, string>()
  let stopTicking: (() => void) | undefined

  const stateText = (zone: ZoneRow) => JSON.stringify({ type: 'state', ...stateOf(zone.state) })

  function tick (now: number) {
    const timestamp = localIso(now)
    const clock = JSON.stringify({ type: 'clock', timestamp })
    for (const audience of channels.values()) for (const socket of audience) sendBounded(socket, clock)
    for (const [zoneId, audience] of reference) {
      const zone = zones.zone(zoneId)
      if (zone === undefined) continue
      const { mode, since, to } = stateOf(zone.state)
      const text = JSON.stringify({ mode, timestamp, since, to })
      for (const socket of audience) sendBounded(socket, text)
    }
  }

  const stopListening = control.onChange(zone => {
    const audience = channels.get(zone.zone_id)
    if (audience === undefined) return
    const text = stateText(zone)
    if (lastState.get(zone.zone_id) === text) return
    lastState.set(zone.zone_id, text)
    for (const socket of audience) sendBounded(socket, text)
  })

  function join (audiences: Audience, zoneId: string, socket: WebSocket) {
    const audience = audiences.get(zoneId) ?? new Set()
    audiences.set(zoneId, audience)
    audience.add(socket)
    stopTicking ??= ticker.add(tick)
    socket.on('close', () => {
      audience.delete(socket)
      if (audience.size === 0) {
        audiences.delete(zoneId)
        if (audiences === channels) lastState.delete(zoneId)
      }
      if (channels.size === 0 && reference.size === 0) { stopTicking?.(); stopTicking = undefined }
    })
  }

  return {
    /** `/api/v1/zones/<zone>/ws`: the state at once, then clock ticks and state changes. */
    joinChannel (zone: ZoneRow, socket: WebSocket) {
      join(channels, zone.zone_id, socket)
      const text = stateText(zone)
      if (!lastState.has(zone.zone_id)) lastState.set(zone.zone_id, text)
      sendBounded(socket, text)
    },
    /** The reference's `/ws`: mode, timestamp, since and to, every second. */
    joinReference (zone: ZoneRow, socket: WebSocket) {
      join(reference, zone.zone_id, socket)
    },
    get clients () {
      let count = 0
      for (const audience of [...channels.values(), ...reference.values()]) count += audience.size
      return count
    },
    close () {
      stopListening()
      stopTicking?.()
      for (const audience of [...channels.values(), ...reference.values()]) for (const socket of audience) socket.close(1001, 'service stopping')
      channels.clear()
      reference.clear()
    }
  }
}
export type ZoneLive = ReturnType<typeof createZoneLive>
