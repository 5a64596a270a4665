import { useEffect, useState } from 'preact/hooks'
import { api, when } from '../api.ts'
import { useLive } from '../live.ts'
// The kinds the service declares (src/kinds.ts): a kind missing from `registrations` below fails the build.
import type { DeviceKindName } from '../../../src/kinds.ts'

export interface Device {
  id: string
  kind: DeviceKindName
  name: string
  network_identifier: string
  online: boolean
  last_seen: string | null
  connected_since: string | null
}

interface Status { online: boolean, last_seen: string | null }

/** The online dot and last-seen time. */
export function PresenceDot ({ status }: { status: Status }) {
  return (
    <span class="presence" data-online={String(status.online)}>
      <span class={`dot ${status.online ? 'on' : 'off'}`} aria-hidden="true" />
      <span>{status.online ? 'online' : 'offline'}</span>
      <small> · last seen {when(status.last_seen)}</small>
    </span>
  )
}

/** One device's presence, kept live by its `status` channel. */
export function Presence ({ device }: { device: Device }) {
  const [status, setStatus] = useState<Status>({ online: device.online, last_seen: device.last_seen })
  useLive(`/api/v1/devices/${encodeURIComponent(device.id)}/ws`, {
    onOpen: send => send({ type: 'subscribe', channels: ['status'] }),
    onMessage: message => { if (message.type === 'status' && message.data !== null) setStatus(message.data) }
  })
  return <PresenceDot status={status} />
}

type Kind = Device['kind']
interface Credentials { kind: Kind, id: string, username: string, password: string, token?: string }
type Field = (name: string) => string

/** How the console registers each kind of device: its label, and its reference's registration route. */
const registrations: Record<Kind, { label: string, register(field: Field, network_identifier: string): Promise<Omit<Credentials, 'kind'>> }> = {
  sensor: {
    label: 'Sensor',
    register: async (field, network_identifier) => {
      const r = await api('POST', '/sensors', { sensor_name: field('name'), network_identifier, configuration: {} })
      return { id: r.sensor_identifier, ...r.mqtt }
    }
  },
  socket: {
    label: 'Smart socket (Tasmota)',
    register: async (field, network_identifier) => {
      const r = await api('POST', '/api/sockets', { name: field('name'), topic: field('topic'), network_identifier })
      return { id: r.socket_identifier, ...r.mqtt }
    }
  },
  zone: {
    label: 'Irrigation zone',
    register: async (field, network_identifier) => {
      const r = await api('POST', '/api/v1/zones', { name: field('name'), network_identifier, timer_seconds: Number(field('timer') || '10') })
      return { id: r.zone_identifier, ...r.mqtt }
    }
  },
  charger: {
    label: 'Charger and widget',
    register: async (field, network_identifier) => {
      const r = await api('POST', '/api/v1/chargers', { charger_id: field('charger'), widget_id: field('widget'), network_identifier })
      return { id: r.charger_id, ...r.mqtt, token: r.token }
    }
  },
  host: {
    label: 'Host agent',
    register: async (field, network_identifier) => {
      const r = await api('POST', '/api/v1/devices', { name: field('name'), kind: 'host', network_identifier })
      return { id: r.id, ...r.mqtt }
    }
  }
}

export function NetworkPage ({ networkId }: { networkId: string }) {
  const [devices, setDevices] = useState<Device[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [kind, setKind] = useState<Kind>('sensor')
  const [fields, setFields] = useState<Record<string, string>>({})
  const [credentials, setCredentials] = useState<Credentials | null>(null)
  const [mqttPort, setMqttPort] = useState<number | null>(null)
  // Every device's presence on one socket: the network's presence feed.
  const [statuses, setStatuses] = useState<Record<string, Status>>({})
  useLive(`/api/v1/networks/${encodeURIComponent(networkId)}/presence`, {
    onMessage: m => {
      if (m.type === 'snapshot') setStatuses(Object.fromEntries((m.data as Array<Status & { id: string }>).map(d => [d.id, d])))
      if (m.type === 'status') setStatuses(current => ({ ...current, [m.data.id]: m.data }))
    }
  })
  const load = () => api<Device[]>('GET', `/api/v1/devices?network=${encodeURIComponent(networkId)}`).then(setDevices, (e: Error) => setError(e.message))
  useEffect(() => {
    void load()
    api<{ mqtt_port: number }>('GET', '/api/v1/broker').then(b => setMqttPort(b.mqtt_port), () => undefined)
  }, [networkId])
  const field = (name: string) => fields[name] ?? ''
  const input = (name: string, label: string, extra: Record<string, unknown> = {}) => (
    <label>{label} <input name={name} required value={field(name)} onInput={e => setFields({ ...fields, [name]: e.currentTarget.value })} {...extra} /></label>
  )

  const register = async (event: Event) => {
    event.preventDefault()
    setError(null)
    try {
      setCredentials({ kind, ...await registrations[kind].register(field, networkId) })
      setFields({})
      await load()
    } catch (failure) { setError((failure as Error).message) }
  }

  return (
    <section>
      <h1>Devices</h1>
      {devices === null ? <p>Loading…</p> : devices.length === 0 ? <p>No device yet: register one below.</p> : (
        <table class="devices">
          <thead><tr><th>Name</th><th>Kind</th><th>Presence</th></tr></thead>
          <tbody>
            {devices.map(d => (
              <tr key={d.id} data-device={d.id}>
                <td><a href={`#/devices/${encodeURIComponent(d.id)}`}>{d.name}</a></td>
                <td>{d.kind}</td>
                <td><PresenceDot status={statuses[d.id] ?? d} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Register a device</h2>
      <form class="stack" onSubmit={register}>
        <label>Kind
          <select name="kind" value={kind} onChange={e => { setKind(e.currentTarget.value as Kind); setCredentials(null) }}>
            {Object.entries(registrations).map(([value, { label }]) => <option key={value} value={value}>{label}</option>)}
          </select>
        </label>
        {kind !== 'charger' && input('name', 'Name', { maxLength: 200 })}
        {kind === 'socket' && input('topic', 'Tasmota topic', { pattern: '[A-Za-z0-9_.\\-]{1,32}' })}
        {kind === 'zone' && input('timer', 'Timer (seconds)', { type: 'number', min: 1, required: false, placeholder: '10' })}
        {kind === 'charger' && input('charger', 'Charger id', { placeholder: 'c1234' })}
        {kind === 'charger' && input('widget', 'Widget id', { placeholder: 'wABCD' })}
        <button type="submit">Register</button>
      </form>
      {error !== null && <p class="error" role="alert">{error}</p>}
      {credentials !== null && (
        <div class="credentials" role="region" aria-label="Device credentials">
          <p><strong>Copy these into the device now: the password is shown only once.</strong></p>
          <dl>
            <dt>MQTT host</dt><dd><code>{location.hostname}</code></dd>
            <dt>MQTT port</dt><dd><code>{mqttPort ?? '…'}</code></dd>
            <dt>Username</dt><dd><code data-field="username">{credentials.username}</code></dd>
            <dt>Password</dt><dd><code data-field="password">{credentials.password}</code></dd>
            {credentials.token !== undefined && <><dt>WebSocket token</dt><dd><code data-field="token">{credentials.token}</code></dd></>}
          </dl>
          <a href={`#/devices/${encodeURIComponent(credentials.id)}`}>Open the new {credentials.kind}</a>
        </div>
      )}
    </section>
  )
}
