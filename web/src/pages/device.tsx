import { useEffect, useState } from 'preact/hooks'
import { api } from '../api.ts'
import { ChargerView } from './charger.tsx'
import { HostView } from './host.tsx'
import { Presence, type Device } from './network.tsx'
import { SensorView } from './sensor.tsx'
import { SocketView } from './socket.tsx'
import { ZoneView } from './zone.tsx'

/** One device: its presence, and the view of its kind. */
export function DevicePage ({ deviceId }: { deviceId: string }) {
  const [device, setDevice] = useState<Device | null>(null)
  const [error, setError] = useState<string | null>(null)
  useEffect(() => { api<Device>('GET', `/api/v1/devices/${encodeURIComponent(deviceId)}`).then(setDevice, (e: Error) => setError(e.message)) }, [deviceId])
  if (error !== null) return <p class="error" role="alert">{error}</p>
  if (device === null) return <p>Loading…</p>
  const views = { sensor: SensorView, socket: SocketView, zone: ZoneView, charger: ChargerView, host: HostView }
  const View = views[device.kind]
  return (
    <section>
      <p><a href={`#/networks/${device.network_identifier}`}>← network</a></p>
      <h1>{device.name} <small>{device.kind}</small></h1>
      <Presence device={device} />
      <View device={device} />
    </section>
  )
}
