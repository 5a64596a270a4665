import { useEffect, useState } from 'preact/hooks'
import { api, when } from '../api.ts'

// A device's page as of a moment: the route carries the moment (#/devices/<id>?at=<ISO 8601> or
// ?position=<n>), so it can be linked to (the audit view does) and the browser's Back returns to now.
// The page then renders from GET /api/v1/devices/<id>/state instead of the live sockets.

/** A moment of the log: up to a position, or up to an instant (inclusive), as the state API takes it. */
export type Moment = { position: number } | { at: string }

/** The moment in a device route's query; null (now) without one. A malformed one is passed on for the API to refuse. */
export function momentOf (query: URLSearchParams): Moment | null {
  const position = query.get('position')
  if (position !== null) return { position: /^\d+$/.test(position) ? Number(position) : NaN }
  const at = query.get('at')
  return at === null ? null : { at }
}

const queryOf = (moment: Moment) => 'position' in moment ? `position=${moment.position}` : `at=${encodeURIComponent(moment.at)}`

/** The device's page, as of `moment` (null: now). */
export const deviceHref = (deviceId: string, moment: Moment | null = null) =>
  `#/devices/${encodeURIComponent(deviceId)}${moment === null ? '' : `?${queryOf(moment)}`}`

export interface StateAsOf<S = unknown> {
  device_identifier: string
  kind: string
  /** The last event of the device's stream folded, and when it was recorded; null before its first. */
  position: number | null
  recorded_at: string | null
  online: boolean
  last_seen: string | null
  /** The kind's view; null before the device was registered. */
  state: S | null
}

/** What each kind's page as of a moment is given. */
export interface AsOfProps<S> {
  state: S
  /** The moment shown (ms since the epoch): the instant chosen, or by position when the device's last event then was recorded. */
  instant: number | null
}

export const instantShown = (moment: Moment, shown: StateAsOf): number | null => {
  const instant = Date.parse('at' in moment ? moment.at : shown.recorded_at ?? '')
  return Number.isNaN(instant) ? null : instant
}

/** The device's state as of `moment`, read once (the past does not change). */
export function useStateAsOf (deviceId: string, moment: Moment | null): { asOf: StateAsOf | null, error: string | null } {
  const [result, setResult] = useState<{ key: string, asOf: StateAsOf | null, error: string | null } | null>(null)
  const key = moment === null ? '' : `${deviceId}?${queryOf(moment)}`
  useEffect(() => {
    if (moment === null) return
    let current = true
    api<StateAsOf>('GET', `/api/v1/devices/${encodeURIComponent(deviceId)}/state?${queryOf(moment)}`).then(
      asOf => { if (current) setResult({ key, asOf, error: null }) },
      (e: Error) => { if (current) setResult({ key, asOf: null, error: e.message }) })
    return () => { current = false }
  }, [key])
  // An answer for another moment is not shown while the new one loads.
  return result?.key === key ? result : { asOf: null, error: null }
}

const pad = (n: number) => String(n).padStart(2, '0')
/** An instant as a datetime-local input's value: the browser's local time, to the second. */
const localInput = (iso: string) => {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return ''
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}
/**
 * The instant that ends the chosen local second. The console shows times to the second, so "as of
 * 12:00:05" includes what was recorded during 12:00:05, as the audit view lists it.
 */
const instantOf = (local: string) => new Date(new Date(local).getTime() + 999).toISOString()

/** The "as of" control: a date and time (a moment of the past), or now. */
export function AsOfControl ({ deviceId, moment, shown }: { deviceId: string, moment: Moment | null, shown: StateAsOf | null }) {
  // Starts at the moment shown; by position, at the time of the device's last event then.
  const initial = moment === null ? '' : 'at' in moment ? localInput(moment.at) : localInput(shown?.recorded_at ?? '')
  const [value, setValue] = useState(initial)
  useEffect(() => setValue(initial), [initial])
  const show = (event: Event) => {
    event.preventDefault()
    if (value !== '') location.hash = deviceHref(deviceId, { at: instantOf(value) })
  }
  return (
    <form class="row as-of-control" onSubmit={show}>
      <label>As of <input name="as-of" type="datetime-local" step={1} required value={value} onInput={e => setValue(e.currentTarget.value)} /></label>
      <button type="submit">Show</button>
      <button type="button" class="secondary" disabled={moment === null} onClick={() => { location.hash = deviceHref(deviceId) }}>Now</button>
    </form>
  )
}

/** Says which moment the page shows, that it is not live, and the way back to now. */
export function AsOfBanner ({ deviceId, moment, shown }: { deviceId: string, moment: Moment, shown: StateAsOf | null }) {
  const which = 'at' in moment ? `as of ${when(moment.at)}` : `right after event #${moment.position} of the log`
  return (
    <div class="banner as-of" role="status" data-testid="as-of-banner">
      Showing this device {which}
      {shown !== null && (shown.position === null ? ' (before its first event)' : ` (its last event then: #${shown.position}, recorded ${when(shown.recorded_at)})`)}.
      {' '}Live updates are paused. <a href={deviceHref(deviceId)}>Back to now</a>
    </div>
  )
}

/** A panel that a moment of the past cannot show. */
export function NotAsOf ({ title, what }: { title: string, what: string }) {
  return (
    <article>
      <h2>{title}</h2>
      <p class="muted">{what} not available as of a moment: the audit view lists this device's events up to it.</p>
    </article>
  )
}
