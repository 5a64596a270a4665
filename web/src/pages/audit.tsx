import { useEffect, useState } from 'preact/hooks'
import { api, when } from '../api.ts'

interface AuditEvent { position: number, stream_id: string, type: string, recorded_at: string, data: unknown, metadata: { actor?: string } }
type Verification = { ok: true, count: number, head: string } | { ok: false, position: number, reason: string }

const PAGE = 50

/** The event log, newest first, filtered by device stream and type, with the hash chain's verification. */
export function AuditPage () {
  const [events, setEvents] = useState<AuditEvent[]>([])
  const [stream, setStream] = useState('')
  const [type, setType] = useState('')
  const [before, setBefore] = useState<number[]>([])
  const [verification, setVerification] = useState<Verification | null>(null)
  const [devices, setDevices] = useState<Array<{ id: string, kind: string, name: string }>>([])
  const [error, setError] = useState<string | null>(null)

  const load = async (until?: number) => {
    const query = new URLSearchParams({ order: 'desc', limit: String(PAGE) })
    if (until !== undefined) query.set('before', String(until))
    if (stream !== '') query.set('stream', stream)
    if (type !== '') query.set('type', type)
    try { setEvents((await api<{ events: AuditEvent[] }>('GET', `/api/v1/events?${query}`)).events) } catch (e) { setError((e as Error).message) }
  }
  useEffect(() => {
    void load()
    api<Verification>('GET', '/api/v1/verify').then(setVerification, () => undefined)
    api<Array<{ id: string, kind: string, name: string }>>('GET', '/api/v1/devices').then(setDevices, () => undefined)
  }, [])

  return (
    <section>
      <h1>Audit</h1>
      <p data-testid="verification" class={verification?.ok === false ? 'error' : ''}>
        {verification === null ? 'Verifying the hash chain…'
          : verification.ok ? `Hash chain verified: ${verification.count} events, head ${verification.head.slice(0, 16)}…`
            : `Hash chain broken at position ${verification.position}: ${verification.reason}`}
      </p>
      <form class="row" onSubmit={e => { e.preventDefault(); setBefore([]); void load() }}>
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
        <thead><tr><th>#</th><th>Recorded</th><th>Stream</th><th>Type</th><th>Actor</th><th>Data</th></tr></thead>
        <tbody>
          {events.map(e => (
            <tr key={e.position}>
              <td>{e.position}</td><td>{when(e.recorded_at)}</td>
              <td><button type="button" class="link" onClick={() => setStream(e.stream_id)}>{e.stream_id}</button></td>
              <td>{e.type}</td><td>{e.metadata.actor ?? ''}</td><td><code>{JSON.stringify(e.data).slice(0, 160)}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="row">
        <button type="button" disabled={before.length === 0} onClick={() => { const pages = before.slice(0, -1); setBefore(pages); void load(pages.at(-1)) }}>Newer</button>
        <button type="button" disabled={events.length < PAGE} onClick={() => { const edge = events.at(-1)!.position; setBefore([...before, edge]); void load(edge) }}>Older</button>
      </div>
    </section>
  )
}
