import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import app, { requestIds } from '../../src/app.ts'
import { ManualClock, type Clock } from '../../src/clock.ts'
import { parseConfig } from '../../src/config.ts'

/** The part of a tap test a helper needs: teardown. */
export interface Teardown { teardown(fn: () => unknown): void }

export interface Service {
  app: FastifyInstance
  /** http://127.0.0.1:<port> */
  url: string
  mqttUrl: string
  mqttPort: number
  dir: string
  databasePath: string
  clock: Clock
  close(): Promise<void>
}

export interface ServiceOptions {
  clock?: Clock
  /** Reuse a folder (and its database) to test a restart. */
  dir?: string
  env?: Record<string, string>
  /** Called with the bare Fastify instance before the service is registered on it (an onRoute hook sees every route). */
  before?: (instance: FastifyInstance) => void
}

export const tempDir = (t: Teardown): string => {
  const dir = mkdtempSync(join(tmpdir(), 'devicelog-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The whole service on a temporary database, HTTP and MQTT on ephemeral ports of 127.0.0.1. */
export async function startService (t: Teardown, options: ServiceOptions = {}): Promise<Service> {
  const dir = options.dir ?? tempDir(t)
  const databasePath = join(dir, 'devicelog.db')
  const clock = options.clock ?? new ManualClock()
  const config = parseConfig({ DATABASE_PATH: databasePath, LOG_LEVEL: 'silent', ...options.env })
  // (A loaded CI machine can take more than the default 10 s to start the writer thread.)
  const instance = Fastify({ logger: false, pluginTimeout: 60_000, ...requestIds, trustProxy: config.TRUST_PROXY.length > 0 ? config.TRUST_PROXY : false })
  options.before?.(instance)
  await instance.register(app, { config, clock })
  await instance.listen({ port: 0, host: '127.0.0.1' })
  const mqttPort = await instance.broker.listen(0, '127.0.0.1')
  const address = instance.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await instance.close()
  }
  t.teardown(close)
  return { app: instance, url: `http://127.0.0.1:${port}`, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, mqttPort, dir, databasePath, clock, close }
}

export interface HttpResult<T = any> { status: number, body: T, headers: Headers }

/** Real HTTP: a JSON request with an optional bearer token. */
export async function http<T = any> (service: Service, method: string, path: string, options: { token?: string, body?: unknown } = {}): Promise<HttpResult<T>> {
  const headers: Record<string, string> = {}
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(service.url + path, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body)
  })
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text), headers: response.headers }
}

export interface SensorFixture {
  token: string
  userId: string
  networkId: string
  sensorId: string
  password: string
}

let counter = 0

/** A user, a network and a sensor in it, made through the public API. */
export async function createSensor (service: Service, options: { token?: string, networkId?: string, configuration?: Record<string, unknown> } = {}): Promise<SensorFixture> {
  let token = options.token
  let userId = ''
  if (token === undefined) {
    const user = await http(service, 'POST', '/users', { body: { username: `user-${process.pid}-${++counter}`, password: 'correct horse' } })
    if (user.status !== 201) throw new Error(`POST /users: ${user.status}`)
    token = user.body.access_token as string
    userId = user.body.user_identifier as string
  }
  let networkId = options.networkId
  if (networkId === undefined) {
    const network = await http(service, 'POST', '/networks', { token, body: { network_name: `network-${++counter}` } })
    networkId = network.body.network_identifier as string
  }
  const sensor = await http(service, 'POST', '/sensors', {
    token, body: { sensor_name: `sensor-${++counter}`, network_identifier: networkId, configuration: options.configuration ?? {} }
  })
  if (sensor.status !== 201) throw new Error(`POST /sensors: ${sensor.status} ${JSON.stringify(sensor.body)}`)
  return { token, userId, networkId, sensorId: sensor.body.sensor_identifier, password: sensor.body.mqtt.password }
}

/** A real mqtt.js client, connected (rejects on a refused CONNECT). */
export async function connectMqtt (t: Teardown, url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  t.teardown(() => client.endAsync(true))
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  return client
}

export const connectSensor = (t: Teardown, service: Service, sensor: SensorFixture, options: IClientOptions = {}) =>
  connectMqtt(t, service.mqttUrl, { username: sensor.sensorId, password: sensor.password, ...options })

/**
 * Publish and wait for the PUBACK (QoS 1 by default); fails at once if the connection closes
 * first, so a broker that cut a device off makes a test fail rather than hang.
 */
export function publish (client: MqttClient, topic: string, payload: string | Buffer | object, qos: 0 | 1 = 1): Promise<void> {
  if (!client.connected) return Promise.reject(new Error(`not connected: cannot publish to ${topic}`))
  const body = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload)
  return new Promise<void>((resolve, reject) => {
    const closed = () => reject(new Error(`the connection closed before the PUBACK of ${topic}`))
    client.once('close', closed)
    client.publishAsync(topic, body, { qos }).then(() => resolve(), reject).finally(() => client.removeListener('close', closed))
  })
}
