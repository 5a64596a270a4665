import { useEffect, useState } from 'preact/hooks'
import { api } from '../api.ts'
import { useLive } from '../live.ts'
import { NotAsOf, type AsOfProps } from './as-of.tsx'
import type { Device } from './network.tsx'

interface ZoneState { mode: 'wait_mode' | 'timer_mode' | 'manual_mode', since: string | null, to: string | null }
interface HistoryEntry extends ZoneState { timestamp: string }

const MODE_NAMES = { wait_mode: 'Waiting', timer_mode: 'Timer', manual_mode: 'Manual' }
/** The server's local time, without a zone: read as written, never converted. */
const clockText = (local: string | null) => local === null ? '—' : local.replace('T', ' ').replace(/\.\d+$/, '')
const parseLocal = (local: string) => new Date(local).getTime()

/** An irrigation zone: the server's clock, the mode with a countdown, the controls, the history. */
export function ZoneView ({ device }: { device: Device }) {
  const base = `/api/v1/zones/${encodeURIComponent(device.id)}`
  const [clock, setClock] = useState<string | null>(null)
  const [state, setState] = useState<ZoneState | null>(null)
  const [history, setHistory] = useState<HistoryEntry[]>([])
  const [error, setError] = useState<string | null>(null)
  const loadHistory = () => api<HistoryEntry[]>('GET', `${base}/history`).then(setHistory)
  useEffect(() => { void loadHistory() }, [device.id])
  useLive(`${base}/ws`, {
    onOpen: () => { void loadHistory() },
    onMessage: m => {
      if (m.type === 'clock') setClock(m.timestamp)
      if (m.type === 'state') { setState({ mode: m.mode, since: m.since, to: m.to }); void loadHistory() }
    }
  })
  const command = (name: 'manual' | 'timer' | 'stop') => async () => {
    setError(null)
    try { await api('POST', `${base}/${name}`) } catch (failure) { setError((failure as Error).message) }
  }
  // Both times are the server's: the countdown does not depend on the browser's clock.
  const remaining = state?.mode === 'timer_mode' && state.to !== null && clock !== null
    ? Math.max(0, Math.ceil((parseLocal(state.to) - parseLocal(clock)) / 1000))
    : null

  return (
    <div class="grid">
      <article>
        <h2>Server clock</h2>
        <p class="clock" data-testid="clock">{clockText(clock)}</p>
        <h2>Mode</h2>
        <p class={`mode mode-${state?.mode ?? 'unknown'}`} data-testid="mode">{state === null ? '…' : MODE_NAMES[state.mode]}</p>
        {state !== null && state.since !== null && <p>since {clockText(state.since)}{state.to !== null && <> until {clockText(state.to)}</>}</p>}
        {remaining !== null && <p class="countdown" data-testid="countdown">{remaining} s left</p>}
        <div class="row">
          <button type="button" onClick={command('manual')}>Manual</button>
          <button type="button" onClick={command('timer')}>Timer</button>
          <button type="button" class="secondary" onClick={command('stop')}>Stop</button>
        </div>
        {error !== null && <p class="error" role="alert">{error}</p>}
      </article>
      <article>
        <h2>History</h2>
        {history.length === 0 ? <p>Nothing yet.</p> : (
          <table class="history">
            <thead><tr><th>Mode</th><th>Since</th><th>Ended</th><th>Timer end</th></tr></thead>
            <tbody>{history.map(h => <tr key={h.timestamp + h.since}><td>{MODE_NAMES[h.mode]}</td><td>{clockText(h.since)}</td><td>{clockText(h.timestamp)}</td><td>{clockText(h.to)}</td></tr>)}</tbody>
          </table>
        )}
      </article>
    </div>
  )
}

/** GET /api/v1/devices/<id>/state's view of a zone. */
interface ZoneAsOfState extends ZoneState { timer_seconds: number, valve_open: boolean | null, valve_mismatch: boolean }

/** A zone as of a moment: its mode with since and to (the server's clock), and its valve as reported then. */
export function ZoneAsOf ({ state }: AsOfProps<ZoneAsOfState>) {
  return (
    <div class="grid">
      <article>
        <h2>Mode</h2>
        <p class={`mode mode-${state.mode}`} data-testid="mode">{MODE_NAMES[state.mode]}</p>
        {state.since !== null && <p>since {clockText(state.since)}{state.to !== null && <> until {clockText(state.to)}</>}</p>}
        <p>Timer: {state.timer_seconds} s</p>
        <h2>Valve</h2>
        <p data-testid="valve">{state.valve_open === null ? 'not reported yet' : state.valve_open ? 'open' : 'closed'}</p>
        {state.valve_mismatch && <p class="error">The valve reported otherwise than it was commanded.</p>}
      </article>
      <NotAsOf title="History" what="The history is" />
    </div>
  )
}
