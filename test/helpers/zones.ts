import type { IClientOptions, MqttClient } from 'mqtt'
import { connectMqtt, http, type Service, type Teardown } from './service.ts'

export interface ZoneFixture {
  token: string
  networkId: string
  zoneId: string
  password: string
}

let counter = 0

/** A user, a network and an irrigation zone in it, made through the public API (each reused when given). */
export async function createZone (service: Service, options: { token?: string, networkId?: string, name?: string, timerSeconds?: number } = {}): Promise<ZoneFixture> {
  let token = options.token
  if (token === undefined) {
    const user = await http(service, 'POST', '/users', { body: { username: `gardener-${process.pid}-${++counter}`, password: 'correct horse' } })
    if (user.status !== 201) throw new Error(`POST /users: ${user.status}`)
    token = user.body.access_token as string
  }
  const networkId = options.networkId ??
    (await http(service, 'POST', '/networks', { token, body: { network_name: `garden-${++counter}` } })).body.network_identifier as string
  const created = await http(service, 'POST', '/api/v1/zones', {
    token,
    body: { name: options.name ?? `zone-${++counter}`, network_identifier: networkId, ...(options.timerSeconds === undefined ? {} : { timer_seconds: options.timerSeconds }) }
  })
  if (created.status !== 201) throw new Error(`POST /api/v1/zones: ${created.status} ${JSON.stringify(created.body)}`)
  if (created.body.mqtt.username !== created.body.zone_identifier) throw new Error('the MQTT username is not the zone id')
  return { token, networkId, zoneId: created.body.zone_identifier, password: created.body.mqtt.password }
}

/** The zone's valve controller: a real MQTT client whose username is the zone's identifier. */
export const connectValve = (t: Teardown, service: Service, zone: ZoneFixture, options: IClientOptions = {}): Promise<MqttClient> =>
  connectMqtt(t, service.mqttUrl, { username: zone.zoneId, password: zone.password, ...options })
