import { Fragment } from 'preact'
import { useState } from 'preact/hooks'
import { Chart } from '../chart.tsx'
import { useLive } from '../live.ts'
import { NotAsOf, type AsOfProps } from './as-of.tsx'
import type { Device } from './network.tsx'

interface History {
  cpu: Array<{ time: string, value: number }>
  memory: Array<{ time: string, used: number, available: number }>
  network: Array<{ time: string, download: number, upload: number }>
}

/** Reported names and values, or that there is no report yet. */
function Facts ({ facts }: { facts: Record<string, unknown> | null }) {
  if (facts === null) return <p>No report yet.</p>
  return <dl class="info">{Object.entries(facts).map(([k, v]) => <Fragment key={k}><dt>{k}</dt><dd>{String(v)}</dd></Fragment>)}</dl>
}

/** A host: system info, top processes, and the CPU, memory and network charts, live. */
export function HostView ({ device }: { device: Device }) {
  const [info, setInfo] = useState<Record<string, unknown> | null>(null)
  const [processes, setProcesses] = useState<Array<Record<string, unknown>>>([])
  const [history, setHistory] = useState<History | null>(null)
  useLive(`/api/v1/devices/${encodeURIComponent(device.id)}/ws`, {
    onOpen: send => send({ type: 'subscribe', channels: ['system-info', 'processes', 'history'] }),
    onMessage: m => {
      if (m.data === null) return
      if (m.type === 'system-info') setInfo(m.data)
      if (m.type === 'processes') setProcesses(m.data.top_processes)
      if (m.type === 'history') setHistory(m.data)
    }
  })
  const index = (n: number) => Array.from({ length: n }, (_, i) => i)
  const columns = processes[0] === undefined ? [] : Object.keys(processes[0]).slice(0, 6)
  return (
    <div class="grid">
      <article>
        <h2>System</h2>
        <Facts facts={info} />
      </article>
      <article>
        <h2>Processes</h2>
        {processes.length === 0 ? <p>No report yet.</p> : (
          <table class="processes">
            <thead><tr>{columns.map(c => <th key={c}>{c}</th>)}</tr></thead>
            <tbody>{processes.slice(0, 20).map((p, i) => <tr key={i}>{columns.map(c => <td key={c}>{String(p[c] ?? '')}</td>)}</tr>)}</tbody>
          </table>
        )}
      </article>
      {history !== null && (
        <article class="wide">
          <h2>History <small>{history.cpu.at(-1)?.time}</small></h2>
          <Chart title="CPU %" plainX labels={history.cpu.map(p => p.time)} series={['cpu']} data={[index(history.cpu.length), history.cpu.map(p => p.value)]} />
          <Chart title="Memory (MiB)" plainX labels={history.memory.map(p => p.time)} series={['used', 'available']} data={[index(history.memory.length), history.memory.map(p => p.used), history.memory.map(p => p.available)]} />
          <Chart title="Network (bytes)" plainX labels={history.network.map(p => p.time)} series={['download', 'upload']} data={[index(history.network.length), history.network.map(p => p.download), history.network.map(p => p.upload)]} />
        </article>
      )}
    </div>
  )
}

/** A host as of a moment: the last system info and metrics it had reported by then. */
export function HostAsOf ({ state }: AsOfProps<{ system_info: Record<string, unknown> | null, metrics: Record<string, unknown> | null }>) {
  return (
    <div class="grid">
      <article>
        <h2>System</h2>
        <Facts facts={state.system_info} />
      </article>
      <article>
        <h2>Metrics</h2>
        <Facts facts={state.metrics} />
      </article>
      <NotAsOf title="Processes and history" what="The processes and the charts are" />
    </div>
  )
}
