import { useEffect, useMemo, useState } from 'preact/hooks'
import { api, when } from '../api.ts'
import { Chart } from '../chart.tsx'
import { useLive } from '../live.ts'
import { NotAsOf, type AsOfProps } from './as-of.tsx'
import type { Device } from './network.tsx'

interface Measurement { revision: number, creation_timestamp: number, measurement: Record<string, unknown> }
interface LogEntry { revision: number, creation_timestamp: number, severity: string, subject: string, details: string | null }
interface Aggregate { severity: string, subject: string, count: number, min_creation_timestamp: number, max_creation_timestamp: number }
interface Configuration { revision: number, configuration: unknown, acknowledged: boolean, acknowledged_at: number | null, success: boolean | null }

const MAX_POINTS = 500
/** A device's Unix seconds as local time; never throws (a device may send anything, e.g. microseconds). */
const seconds = (t: number | null | undefined) => {
  if (t === null || t === undefined) return '—'
  const date = new Date(t * 1000)
  return Number.isNaN(date.getTime()) ? `invalid time (${t})` : date.toLocaleString()
}
/**
 * `list` and what of `incoming` it does not hold yet. A (re)subscription's snapshot repeats the
 * latest batch, and a re-read may overlap the live updates: neither may count anything twice.
 */
function withNew<T extends { revision: number, creation_timestamp: number }> (list: T[], incoming: T[]): T[] {
  const key = ({ revision, creation_timestamp, ...rest }: T) => `${creation_timestamp} ${revision} ${JSON.stringify(Object.values(rest))}`
  const known = new Set(list.map(key))
  return [...list, ...incoming.filter(item => !known.has(key(item)))]
}

/** A sensor: measurements charted live, the logs with paging, their aggregates, the configuration. */
export function SensorView ({ device }: { device: Device }) {
  const id = encodeURIComponent(device.id)
  const [measurements, setMeasurements] = useState<Measurement[]>([])
  const [logs, setLogs] = useState<LogEntry[]>([])
  const [newestLogs, setNewestLogs] = useState(true)
  // A direction whose last page came back empty: nothing more that way (until the logs move).
  const [exhausted, setExhausted] = useState({ previous: false, next: false })
  const [aggregates, setAggregates] = useState<Aggregate[]>([])
  const [configuration, setConfiguration] = useState<Configuration | null>(null)
  const [draft, setDraft] = useState('')
  const [message, setMessage] = useState<string | null>(null)

  const loadLogs = (query = '') => api<LogEntry[]>('GET', `/sensors/${id}/logs${query}`).then(setLogs)
  const loadAggregates = () => api<Aggregate[]>('GET', `/sensors/${id}/logs/aggregates`).then(setAggregates)
  const refresh = () => {
    void api<Measurement[]>('GET', `/sensors/${id}/measurements`).then(read => setMeasurements(list => withNew(list, read).slice(-MAX_POINTS)))
    if (newestLogs) void loadLogs()
    void loadAggregates()
  }
  useEffect(refresh, [device.id])

  useLive(`/api/v1/devices/${id}/ws`, {
    onOpen: send => send({ type: 'subscribe', channels: ['measurements', 'logs', 'configuration'] }),
    onMessage: m => {
      // Once subscribed (so nothing falls between the two), re-read what a reconnect may have missed.
      if (m.type === 'subscribed') refresh()
      if (m.type === 'measurements' && m.position !== null) setMeasurements(list => withNew(list, m.data).slice(-MAX_POINTS))
      if (m.type === 'logs' && m.position !== null) {
        if (newestLogs) setLogs(list => withNew(list, m.data).slice(-100))
        else setExhausted(was => ({ ...was, next: false }))
        void loadAggregates()
      }
      if (m.type === 'configuration' && m.data !== null) {
        setConfiguration(m.data)
        setDraft(current => current === '' ? JSON.stringify(m.data.configuration, null, 2) : current)
      }
    }
  })

  const numericFields = useMemo(() => {
    const names = new Set<string>()
    for (const m of measurements) for (const [k, v] of Object.entries(m.measurement)) if (typeof v === 'number') names.add(k)
    return [...names].slice(0, 6)
  }, [measurements])
  const data = useMemo(() => {
    const sorted = [...measurements].sort((a, b) => a.creation_timestamp - b.creation_timestamp)
    return [sorted.map(m => m.creation_timestamp), ...numericFields.map(f => sorted.map(m => (m.measurement[f] as number | undefined) ?? (null as unknown as number)))]
  }, [measurements, numericFields])

  const page = (direction: 'previous' | 'next') => {
    const edge = direction === 'previous' ? logs[0] : logs.at(-1)
    if (edge === undefined) return
    void api<LogEntry[]>('GET', `/sensors/${id}/logs?creation_timestamp=${edge.creation_timestamp}&direction=${direction}`).then(read => {
      // An empty page: stay on this one, and say there is nothing further that way.
      if (read.length === 0) return setExhausted(was => ({ ...was, [direction]: true }))
      setNewestLogs(false)
      setExhausted({ previous: false, next: false })
      setLogs(read)
    })
  }
  const latest = () => { setNewestLogs(true); setExhausted({ previous: false, next: false }); void loadLogs() }
  const save = async (event: Event) => {
    event.preventDefault()
    setMessage(null)
    try {
      const parsed = JSON.parse(draft)
      const sensor = await api('GET', `/sensors/${id}`)
      const result = await api('PUT', `/sensors/${id}`, { sensor_name: sensor.sensor_name, network_identifier: sensor.network_identifier, configuration: parsed })
      setMessage(`Saved as revision ${result.revision}`)
    } catch (failure) { setMessage((failure as Error).message) }
  }

  return (
    <div class="grid">
      <article>
        <h2>Measurements <small data-testid="measurement-count">{measurements.length}</small></h2>
        {numericFields.length === 0 ? <p>No numeric measurement yet.</p> : <Chart title="Measurements" series={numericFields} data={data} />}
      </article>
      <article>
        <h2>Logs</h2>
        <table class="logs">
          <thead><tr><th>Time</th><th>Severity</th><th>Subject</th><th>Details</th></tr></thead>
          <tbody>
            {logs.map((l, i) => (
              <tr key={`${l.creation_timestamp}-${i}`} class={`severity-${l.severity}`}>
                <td>{seconds(l.creation_timestamp)}</td><td>{l.severity}</td><td>{l.subject}</td><td>{l.details ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <div class="row">
          <button type="button" onClick={() => page('previous')} disabled={logs.length === 0 || exhausted.previous}>Older</button>
          <button type="button" onClick={() => page('next')} disabled={logs.length === 0 || exhausted.next}>Newer</button>
          <button type="button" class="secondary" onClick={latest}>Latest</button>
        </div>
        <h3>Aggregates</h3>
        <table class="aggregates">
          <thead><tr><th>Severity</th><th>Subject</th><th>Count</th><th>Last</th></tr></thead>
          <tbody>{aggregates.map(a => <tr key={`${a.severity}-${a.subject}`} class={`severity-${a.severity}`}><td>{a.severity}</td><td>{a.subject}</td><td>{a.count}</td><td>{seconds(a.max_creation_timestamp)}</td></tr>)}</tbody>
        </table>
      </article>
      <article>
        <h2>Configuration</h2>
        {configuration === null ? <p>Loading…</p> : (
          <p data-testid="configuration-state">
            Revision {configuration.revision}: {configuration.acknowledged
              ? `acknowledged ${seconds(configuration.acknowledged_at)}${configuration.success === false ? ' (failed)' : ''}`
              : 'not acknowledged yet'}
          </p>
        )}
        <form class="stack" onSubmit={save}>
          <label>New configuration (JSON)
            <textarea name="configuration" rows={8} value={draft} onInput={e => setDraft(e.currentTarget.value)} />
          </label>
          <button type="submit">Push configuration</button>
        </form>
        {message !== null && <p role="status">{message}</p>}
      </article>
    </div>
  )
}

/** GET /api/v1/devices/<id>/state's view of a sensor. */
interface SensorAsOfState {
  sensor_name: string
  revision: number
  configuration: unknown
  revised_at: string | null
  acknowledged_at: number | null
  success: boolean | null
  last_measurement: Measurement | null
}

/** A sensor as of a moment: the configuration it had then, its acknowledgement, its last measurement. */
export function SensorAsOf ({ state }: AsOfProps<SensorAsOfState>) {
  const last = state.last_measurement
  return (
    <div class="grid">
      <article>
        <h2>Configuration</h2>
        <p data-testid="configuration-state">
          Revision {state.revision}: {state.success !== null
            ? `acknowledged ${seconds(state.acknowledged_at)}${state.success ? '' : ' (failed)'}`
            : 'not acknowledged yet'}
        </p>
        <p>In force since {when(state.revised_at)}; the sensor was named <strong>{state.sensor_name}</strong>.</p>
        <pre class="configuration" data-testid="configuration">{JSON.stringify(state.configuration, null, 2)}</pre>
      </article>
      <article>
        <h2>Last measurement</h2>
        {last === null ? <p>None yet.</p> : (
          <>
            <p>{seconds(last.creation_timestamp)}, revision {last.revision}</p>
            <pre data-testid="last-measurement">{JSON.stringify(last.measurement, null, 2)}</pre>
          </>
        )}
      </article>
      <NotAsOf title="Measurements and logs" what="The chart, the logs and their aggregates are" />
    </div>
  )
}
