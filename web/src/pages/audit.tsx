import { useEffect, useRef, useState } from 'preact/hooks'
import { api, when } from '../api.ts'
import { useLive, useReconnecting } from '../live.ts'
import { deviceHref } from './as-of.tsx'

interface AuditEvent { position: number, stream_id: string, type: string, recorded_at: string, data: unknown, metadata: { actor?: string } }
type Verification = { ok: true, count: number, head: string } | { ok: false, position: number, reason: string }
interface Filter { stream: string, type: string }

const PAGE = 50
/** The newest page grows as events arrive; past this many rows the oldest go ("Older" pages back to them). */
const MAX_ROWS = 500

/** The device whose stream this is (a device's stream is `<kind>-<id>`), or null. */
const deviceOf = (stream: string) => /^(?:sensor|socket|zone|charger|host)-(.+)$/.exec(stream)?.[1] ?? null

const matches = (event: AuditEvent, filter: Filter) =>
  (filter.stream === '' || event.stream_id === filter.stream) && (filter.type === '' || event.type === filter.type)

/**
 * The event log, newest first, filtered by device stream and type, with the hash chain's verification.
 * The newest page is live: /api/v1/events/ws pushes each new event that passes the filter, and
 * `after` (the newest event shown) has a reconnect send what was missed meanwhile.
 */
export function AuditPage () {
  const [events, setEvents] = useState<AuditEvent[]>([])
  const [stream, setStream] = useState('')
  const [type, setType] = useState('')
  /** The filter of the rows shown (the inputs may have been edited since). */
  const [applied, setApplied] = useState<Filter>({ stream: '', type: '' })
  const [before, setBefore] = useState<number[]>([])
  /** What the live connection follows: the newest page's filter, from `after`; null on older pages. */
  const [live, setLive] = useState<(Filter & { after: number }) | null>(null)
  const [verification, setVerification] = useState<Verification | null>(null)
  const [devices, setDevices] = useState<Array<{ id: string, kind: string, name: string }>>([])
  const [error, setError] = useState<string | null>(null)
  const loads = useRef(0)

  const load = async (filter: Filter, until?: number) => {
    const query = new URLSearchParams({ order: 'desc', limit: String(PAGE) })
    if (until !== undefined) query.set('before', String(until))
    if (filter.stream !== '') query.set('stream', filter.stream)
    if (filter.type !== '') query.set('type', filter.type)
    const id = ++loads.current
    setApplied(filter)
    try {
      const page = (await api<{ events: AuditEvent[] }>('GET', `/api/v1/events?${query}`)).events
      if (id !== loads.current) return // a later load (another filter or page) answers for the page
      setError(null)
      setEvents(page)
      setLive(until === undefined ? { ...filter, after: page[0]?.position ?? 0 } : null)
    } catch (e) { setError((e as Error).message) }
  }
  useEffect(() => {
    void load(applied)
    api<Verification>('GET', '/api/v1/verify').then(setVerification, () => undefined)
    api<Array<{ id: string, kind: string, name: string }>>('GET', '/api/v1/devices').then(setDevices, () => undefined)
  }, [])

  useLive(live === null ? null : '/api/v1/events/ws', {
    onMessage: message => {
      if (message.type !== 'event' || live === null) return
      const event = message.data as AuditEvent
      if (!matches(event, live)) return
      // Newer than every row only: a reconnect's replay and the first page may overlap.
      setEvents(shown => event.position > (shown[0]?.position ?? 0) ? [event, ...shown].slice(0, MAX_ROWS) : shown)
    }
  }, live === null ? {} : {
    after: String(live.after),
    ...(live.stream === '' ? {} : { stream: live.stream }),
    ...(live.type === '' ? {} : { type: live.type })
  })
  // useLive reconnects with the parameters it was given: once the connection is lost, move `after`
  // up to the newest row, so the reconnect sends only what this page has not shown.
  const reconnecting = useReconnecting()
  const newest = events[0]?.position
  useEffect(() => {
    if (reconnecting && live !== null && newest !== undefined && newest > live.after) setLive({ ...live, after: newest })
  }, [reconnecting])

  return (
    <section>
      <h1>Audit</h1>
      <p data-testid="verification" class={verification?.ok === false ? 'error' : ''}>
        {verification === null ? 'Verifying the hash chain…'
          : verification.ok ? `Hash chain verified: ${verification.count} events, head ${verification.head.slice(0, 16)}…`
            : `Hash chain broken at position ${verification.position}: ${verification.reason}`}
      </p>
      <form class="row" onSubmit={e => { e.preventDefault(); setBefore([]); void load({ stream, type }) }}>
        {/* A device's stream is `<kind>-<id>`. */}
        <label>Device
          <select name="device" value={stream} onChange={e => setStream(e.currentTarget.value)}>
            <option value="">all</option>
            {devices.map(d => <option key={d.id} value={`${d.kind}-${d.id}`}>{d.name} ({d.kind})</option>)}
            {stream !== '' && !devices.some(d => `${d.kind}-${d.id}` === stream) && <option value={stream}>{stream}</option>}
          </select>
        </label>
        <label>Stream <input name="stream" placeholder="sensor-<id>" value={stream} onInput={e => setStream(e.currentTarget.value)} /></label>
        <label>Type <input name="type" placeholder="MeasurementsRecorded" value={type} onInput={e => setType(e.currentTarget.value)} /></label>
        <button type="submit">Filter</button>
      </form>
      {error !== null && <p class="error" role="alert">{error}</p>}
      <table class="events">
        <thead><tr><th>#</th><th>Recorded</th><th>Stream</th><th>Type</th><th>Actor</th><th>State after</th><th>Data</th></tr></thead>
        <tbody>
          {events.map(e => {
            const device = deviceOf(e.stream_id)
            return (
              <tr key={e.position}>
                <td>{e.position}</td><td>{when(e.recorded_at)}</td>
                <td><button type="button" class="link" onClick={() => setStream(e.stream_id)}>{e.stream_id}</button></td>
                <td>{e.type}</td><td>{e.metadata.actor ?? ''}</td>
                {/* The device's page as of this event: its state right after it. */}
                <td>{device !== null && <a href={deviceHref(device, { position: e.position })} aria-label={`State of ${e.stream_id} right after event ${e.position}`}>open</a>}</td>
                <td><code>{JSON.stringify(e.data).slice(0, 160)}</code></td>
              </tr>
            )
          })}
        </tbody>
      </table>
      <div class="row">
        <button type="button" disabled={before.length === 0} onClick={() => { const pages = before.slice(0, -1); setBefore(pages); void load(applied, pages.at(-1)) }}>Newer</button>
        <button type="button" disabled={events.length < PAGE} onClick={() => { const edge = events.at(-1)!.position; setBefore([...before, edge]); void load(applied, edge) }}>Older</button>
      </div>
    </section>
  )
}
