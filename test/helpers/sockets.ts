import { PlugSimulator, type PlugSimulatorOptions } from '../../src/cli/simulators/plug.ts'
import type { RecordedEvent } from '../../src/store/recorded-event.ts'
import { http, type Service, type Teardown } from './service.ts'

export interface SocketFixture {
  token: string
  networkId: string
  socketId: string
  topic: string
  password: string
}

let counter = 0

/** A user, a network and a socket in it, made through the public API. */
export async function createSocket (service: Service, options: { token?: string, networkId?: string, topic?: string, fullTopic?: string } = {}): Promise<SocketFixture> {
  let token = options.token
  if (token === undefined) {
    const user = await http(service, 'POST', '/users', { body: { username: `plug-owner-${process.pid}-${++counter}`, password: 'correct horse' } })
    token = user.body.access_token as string
  }
  const networkId = options.networkId ??
    (await http(service, 'POST', '/networks', { token, body: { network_name: `home-${++counter}` } })).body.network_identifier as string
  const topic = options.topic ?? `plug_${process.pid}_${++counter}`
  const created = await http(service, 'POST', '/api/sockets', {
    token, body: { name: `plug ${topic}`, topic, network_identifier: networkId, ...(options.fullTopic === undefined ? {} : { full_topic: options.fullTopic }) }
  })
  if (created.status !== 201) throw new Error(`POST /api/sockets: ${created.status} ${JSON.stringify(created.body)}`)
  return { token, networkId, socketId: created.body.socket_identifier, topic, password: created.body.mqtt.password }
}

/** The next event committed to the log that matches (register before causing it). */
export function committed (service: Service, match: (event: RecordedEvent) => boolean): Promise<RecordedEvent> {
  return new Promise(resolve => {
    const unsubscribe = service.app.store.subscribe(events => {
      const found = events.find(match)
      if (found === undefined) return
      unsubscribe()
      resolve(found)
    })
  })
}

/**
 * A simulated plug on the service's broker and clock, connected, and ready: the service has
 * asked for its status (when it subscribed) and recorded the answer.
 */
export async function startPlug (t: Teardown, service: Service, socket: SocketFixture, options: Partial<PlugSimulatorOptions> = {}): Promise<PlugSimulator> {
  const plug = new PlugSimulator({
    url: service.mqttUrl, username: socket.topic, password: socket.password, topic: socket.topic, clock: service.clock, ...options
  })
  t.teardown(() => plug.close().catch(() => undefined))
  const ready = committed(service, e => e.type === 'SocketStatusReported' && e.stream_id === `socket-${socket.socketId}`)
  await plug.connect()
  await ready
  return plug
}

/** A request with `*-callback` headers. */
export async function httpWithHeaders (service: Service, method: string, path: string, token: string, headers: Record<string, string>, body?: unknown) {
  const response = await fetch(service.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: response.status, body: await response.json() as any, headers: response.headers }
}
