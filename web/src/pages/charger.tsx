import { useState } from 'preact/hooks'
import { useLive } from '../live.ts'
import type { Device } from './network.tsx'

const LIGHTS = { charging: 'red', charging80: 'yellow', charged: 'green' } as const
type Status = keyof typeof LIGHTS

/** A charger pair: the widget's status light and the last state of charge, live. */
export function ChargerView ({ device }: { device: Device }) {
  const [reading, setReading] = useState<{ soc: number, status: Status } | null>(null)
  useLive(`/api/v1/devices/${encodeURIComponent(device.id)}/ws`, {
    onOpen: send => send({ type: 'subscribe', channels: ['charging'] }),
    onMessage: m => { if (m.type === 'charging' && m.data !== null) setReading(m.data) }
  })
  const status = reading?.status
  return (
    <article>
      <h2>Widget</h2>
      <div class="light" data-status={status ?? 'none'} data-colour={status === undefined ? 'off' : LIGHTS[status]} role="img"
        aria-label={status === undefined ? 'no reading yet' : `status ${status}`} />
      <p data-testid="charging-status">{status ?? 'no reading yet'}{reading !== null && <> · {reading.soc}%</>}</p>
    </article>
  )
}
