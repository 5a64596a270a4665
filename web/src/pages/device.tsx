import { useEffect, useState } from 'preact/hooks'
import { api } from '../api.ts'
import { AsOfBanner, AsOfControl, instantShown, useStateAsOf, type Moment } from './as-of.tsx'
import { ChargerAsOf, ChargerView } from './charger.tsx'
import { HostAsOf, HostView } from './host.tsx'
import { Presence, PresenceDot, type Device } from './network.tsx'
import { SensorAsOf, SensorView } from './sensor.tsx'
import { SocketAsOf, SocketView } from './socket.tsx'
import { ZoneAsOf, ZoneView } from './zone.tsx'

const views = { sensor: SensorView, socket: SocketView, zone: ZoneView, charger: ChargerView, host: HostView }
const pastViews = { sensor: SensorAsOf, socket: SocketAsOf, zone: ZoneAsOf, charger: ChargerAsOf, host: HostAsOf }

/**
 * One device: its presence, and the view of its kind; live, or as of a moment (`moment`), when the
 * live views are not mounted at all (their sockets close) and the state API answers instead.
 */
export function DevicePage ({ deviceId, moment }: { deviceId: string, moment: Moment | null }) {
  const [device, setDevice] = useState<Device | null>(null)
  const [error, setError] = useState<string | null>(null)
  useEffect(() => { api<Device>('GET', `/api/v1/devices/${encodeURIComponent(deviceId)}`).then(setDevice, (e: Error) => setError(e.message)) }, [deviceId])
  const past = useStateAsOf(deviceId, moment)
  if (error !== null) return <p class="error" role="alert">{error}</p>
  if (device === null) return <p>Loading…</p>
  const View = views[device.kind]
  const PastView = pastViews[device.kind]
  return (
    <section>
      <p><a href={`#/networks/${device.network_identifier}`}>← network</a></p>
      <h1>{device.name} <small>{device.kind}</small></h1>
      {moment === null ? (
        <>
          <Presence device={device} />
          <View device={device} />
        </>
      ) : (
        <>
          <AsOfBanner deviceId={deviceId} moment={moment} shown={past.asOf} />
          {past.error !== null && <p class="error" role="alert">{past.error}</p>}
          {past.asOf === null ? past.error === null && <p>Loading…</p> : (
            <>
              <PresenceDot status={past.asOf} />
              {past.asOf.state === null
                ? <p data-testid="not-registered">Not registered yet at this moment.</p>
                : <PastView state={past.asOf.state as never} instant={instantShown(moment, past.asOf)} />}
            </>
          )}
        </>
      )}
      {/* After the device's own controls, which come first in the Tab order. */}
      <AsOfControl deviceId={deviceId} moment={moment} shown={past.asOf} />
    </section>
  )
}
