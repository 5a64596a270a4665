import type { WebSocket } from 'ws'
import { Audiences } from '../live/audiences.ts'
import { sendBounded, type Ticker } from '../live/websocket.ts'
import type { ZoneQueries, ZoneRow } from './projections.ts'
import { localIso, stateOf } from './views.ts'
import type { ZoneControl } from './zone-control.ts'

/**
 * The zones' WebSocket clients. The reference's `/ws` gets its whole message every second;
 * `/api/v1/zones/<zone>/ws` gets the clock every second and the state only when it changes.
 * One ticker serves every client: each tick's clock message is serialised once.
 */
export function createZoneLive (ticker: Ticker, control: ZoneControl, zones: ZoneQueries) {
  const channels = new Audiences<WebSocket>()
  const reference = new Audiences<WebSocket>()
  /** The state last pushed to each zone's channel clients: a commit that did not change it sends nothing. */
  const lastState = new Map<string, string>()
  let stopTicking: (() => void) | undefined

  const stateText = (zone: ZoneRow) => JSON.stringify({ type: 'state', ...stateOf(zone.state) })

  function tick (now: number) {
    const timestamp = localIso(now)
    const clock = JSON.stringify({ type: 'clock', timestamp })
    for (const socket of channels.members()) sendBounded(socket, clock)
    for (const [zoneId, audience] of reference.entries()) {
      const zone = zones.zone(zoneId)
      if (zone === undefined) continue
      const { mode, since, to } = stateOf(zone.state)
      const text = JSON.stringify({ mode, timestamp, since, to })
      for (const socket of audience) sendBounded(socket, text)
    }
  }

  const stopListening = control.onChange(zone => {
    const audience = channels.of(zone.zone_id)
    if (audience === undefined) return
    const text = stateText(zone)
    if (lastState.get(zone.zone_id) === text) return
    lastState.set(zone.zone_id, text)
    for (const socket of audience) sendBounded(socket, text)
  })

  function join (audiences: Audiences<WebSocket>, zoneId: string, socket: WebSocket) {
    const leave = audiences.join(zoneId, socket)
    stopTicking ??= ticker.add(tick)
    socket.on('close', () => {
      leave()
      if (channels.of(zoneId) === undefined) lastState.delete(zoneId)
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
    close () {
      stopListening()
      stopTicking?.()
      for (const socket of [...channels.members(), ...reference.members()]) socket.close(1001, 'service stopping')
      channels.clear()
      reference.clear()
    }
  }
}
export type ZoneLive = ReturnType<typeof createZoneLive>
