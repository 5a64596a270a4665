import { useEffect, useState } from 'preact/hooks'
import { api } from '../api.ts'
import { useLive } from '../live.ts'
import type { AsOfProps } from './as-of.tsx'
import type { Device } from './network.tsx'

interface Instance { id: string, status: string, startTimestamp: string, stopDueTimestamp: string | null, energyKwh: number | null, duration: number | null }
interface ServerData { isEmergencyStopped: boolean, energyToday: number, runningInstances: string[], power: 'ON' | 'OFF' | null, online: boolean, currentTimestamp: string }

const elapsed = (since: string, now: number) => {
  const s = Math.max(0, Math.round((now - Date.parse(since)) / 1000))
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
}

/** A smart socket: power, running instances, start and stop, emergency stop and recover, energy today. */
export function SocketView ({ device }: { device: Device }) {
  const base = `/api/sockets/${encodeURIComponent(device.id)}`
  const [server, setServer] = useState<ServerData | null>(null)
  const [instances, setInstances] = useState<Instance[]>([])
  const [duration, setDuration] = useState('60')
  const [busy, setBusy] = useState(false)
  const [message, setMessage] = useState<string | null>(null)
  const [failed, setFailed] = useState(false)
  // The server's clock minus the browser's, from the latest status: elapsed times are by the server's clock.
  const [offset, setOffset] = useState(0)
  const [now, setNow] = useState(Date.now())

  const refresh = async () => {
    const status = await api<ServerData>('GET', `${base}/server/status`)
    const serverNow = Date.parse(status.currentTimestamp)
    if (Number.isFinite(serverNow)) {
      setOffset(serverNow - Date.now())
      setNow(Date.now())
    }
    setServer(status)
    setInstances(await Promise.all(status.runningInstances.map(id => api<{ instance: Instance }>('GET', `${base}/instance/${id}`).then(r => r.instance))))
  }
  useEffect(() => { void refresh() }, [device.id])
  // Elapsed times tick in the browser (offset to the server's clock); everything else changes only when the socket's events commit.
  useEffect(() => { const timer = setInterval(() => setNow(Date.now()), 1000); return () => clearInterval(timer) }, [])
  useLive(`/api/v1/devices/${encodeURIComponent(device.id)}/ws`, {
    onOpen: send => { send({ type: 'subscribe', channels: ['events'] }); void refresh() },
    onMessage: m => { if (m.type === 'events') void refresh() }
  })

  const act = (method: string, path: string, body?: unknown) => async () => {
    setBusy(true)
    setMessage(null)
    try {
      const result = await api(method, `${base}${path}`, body)
      setFailed(false)
      if (typeof result?.message === 'string') setMessage(result.message)
      await refresh()
    } catch (failure) { setFailed(true); setMessage((failure as Error).message) } finally { setBusy(false) }
  }

  if (server === null) return <p>Loading…</p>
  return (
    <div class="grid">
      <article>
        <h2>Power</h2>
        <p class={`power power-${server.power ?? 'unknown'}`} data-testid="power">{server.power ?? 'unknown'}</p>
        <p>Energy today: <strong data-testid="energy-today">{server.energyToday.toFixed(3)} kWh</strong></p>
        {server.isEmergencyStopped && <p class="error" role="alert">Emergency stop: new instances are refused until you recover.</p>}
        <div class="row">
          <button type="button" class="danger" disabled={busy} onClick={act('POST', '/emergency-stop')}>Emergency stop</button>
          <button type="button" class="secondary" disabled={busy || !server.isEmergencyStopped} onClick={act('PUT', '/recover')}>Recover</button>
        </div>
      </article>
      <article>
        <h2>Instances</h2>
        {instances.length === 0 ? <p>Nothing running.</p> : (
          <table class="instances">
            <thead><tr><th>Started</th><th>Elapsed</th><th>Energy</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {instances.map(i => {
                const started = new Date(i.startTimestamp).toLocaleTimeString()
                return (
                <tr key={i.id} data-instance={i.id}>
                  <td>{started}</td>
                  <td>{elapsed(i.startTimestamp, now + offset)}</td>
                  <td>{i.energyKwh === null ? '—' : `${i.energyKwh.toFixed(4)} kWh`}</td>
                  <td><button type="button" disabled={busy} aria-label={`Stop instance started ${started}`} onClick={act('PUT', `/instance/${i.id}`)}>Stop</button></td>
                </tr>
                )
              })}
            </tbody>
          </table>
        )}
        <form class="row" onSubmit={e => { e.preventDefault(); void act('POST', '/start-wait-stop', { duration: Number(duration) })() }}>
          <label>Duration (s) <input name="duration" type="number" min={1} required value={duration} onInput={e => setDuration(e.currentTarget.value)} /></label>
          <button type="submit" disabled={busy}>Start</button>
        </form>
        {message !== null && <p role="status" class={failed ? 'error' : ''}>{message}</p>}
      </article>
    </div>
  )
}

/** GET /api/v1/devices/<id>/state's view of a socket. */
interface SocketAsOfState {
  power: 'ON' | 'OFF' | null
  desired_power: 'ON' | 'OFF' | null
  emergency_stopped: boolean
  running_instances: Array<{ instance_identifier: string, started_at: string | null, energy_kwh: number | null }>
  energy: { Total?: number, Today?: number, Power?: number } | null
}

/** A socket as of a moment: its power, the instances running then with their energy so far, its last energy reading. */
export function SocketAsOf ({ state, instant }: AsOfProps<SocketAsOfState>) {
  return (
    <div class="grid">
      <article>
        <h2>Power</h2>
        <p class={`power power-${state.power ?? 'unknown'}`} data-testid="power">{state.power ?? 'unknown'}</p>
        {state.desired_power !== null && state.desired_power !== state.power && <p>Asked for {state.desired_power}, not confirmed by the plug yet.</p>}
        {state.energy === null ? <p>No energy reading yet.</p> : (
          <p>
            The plug's last reading: <strong data-testid="energy-total">{state.energy.Total ?? '—'} kWh</strong> in total
            {state.energy.Today !== undefined && <>, {state.energy.Today} kWh today</>}
            {state.energy.Power !== undefined && <>, drawing {state.energy.Power} W</>}
          </p>
        )}
        {state.emergency_stopped && <p class="error">Emergency stop: new instances were refused.</p>}
      </article>
      <article>
        <h2>Instances</h2>
        {state.running_instances.length === 0 ? <p>Nothing running.</p> : (
          <table class="instances">
            <thead><tr><th>Started</th><th>Running for</th><th>Energy so far</th></tr></thead>
            <tbody>
              {state.running_instances.map(i => (
                <tr key={i.instance_identifier} data-instance={i.instance_identifier}>
                  <td>{i.started_at === null ? '—' : new Date(i.started_at).toLocaleString()}</td>
                  <td>{i.started_at === null || instant === null ? '—' : elapsed(i.started_at, instant)}</td>
                  <td>{i.energy_kwh === null ? '—' : `${i.energy_kwh.toFixed(3)} kWh`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </article>
    </div>
  )
}
