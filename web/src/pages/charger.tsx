import { useState } from 'preact/hooks'
import { useLive } from '../live.ts'
import type { AsOfProps } from './as-of.tsx'
import type { Device } from './network.tsx'

const LIGHTS = { charging: 'red', charging80: 'yellow', charged: 'green' } as const
type Status = keyof typeof LIGHTS

/** The widget's status light and the state of charge. */
function Widget ({ status, soc }: { status: Status | null, soc: number | null }) {
  return (
    <article>
      <h2>Widget</h2>
      <div class="light" data-status={status ?? 'none'} data-colour={status === null ? 'off' : LIGHTS[status]} role="img"
        aria-label={status === null ? 'no reading yet' : `status ${status}`} />
      <p data-testid="charging-status">{status ?? (soc === null ? 'no reading yet' : 'no status yet')}{soc !== null && <> · {soc}%</>}</p>
    </article>
  )
}

/** A charger pair: the widget's status light and the last state of charge, live. */
export function ChargerView ({ device }: { device: Device }) {
  const [reading, setReading] = useState<{ soc: number, status: Status } | null>(null)
  useLive(`/api/v1/devices/${encodeURIComponent(device.id)}/ws`, {
    onOpen: send => send({ type: 'subscribe', channels: ['charging'] }),
    onMessage: m => { if (m.type === 'charging' && m.data !== null) setReading(m.data) }
  })
  return <Widget status={reading?.status ?? null} soc={reading?.soc ?? null} />
}

/** A charger pair as of a moment: its status then, and the last state of charge reported by then. */
export function ChargerAsOf ({ state }: AsOfProps<{ status: Status | null, soc: number | null }>) {
  return <Widget status={state.status} soc={state.soc} />
}
