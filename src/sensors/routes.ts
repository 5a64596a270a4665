import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { JsonObject } from '../../events/define.ts'
import { Severity } from '../../events/sensors.ts'
import { userMetadata } from '../accounts/authentication.ts'
import { newSecret, sha256 } from '../accounts/secrets.ts'
import { SensorNotFound } from '../errors.ts'
import { Detail } from '../http/schemas.ts'
import { decideSensor, initialSensorState, type SensorCommand } from './decider.ts'
import type { SensorQueries } from './projections.ts'

const SensorBody = z.object({
  sensor_name: z.string().min(1).max(200),
  network_identifier: z.string(),
  configuration: JsonObject
}).meta({ examples: [{ sensor_name: 'bulbasaur', network_identifier: '0a71a8d8-40c6-4086-a64e-58e38350cb53', configuration: { interval: 5 } }] })
const SensorParams = z.object({ sensor_identifier: z.string() })
const PageQuery = z.object({
  creation_timestamp: z.coerce.number().finite().optional(),
  direction: z.enum(['next', 'previous']).default('next')
})
const Measurement = z.object({ revision: z.number(), creation_timestamp: z.number(), measurement: JsonObject })
const LogEntry = z.object({ revision: z.number(), creation_timestamp: z.number(), severity: Severity, subject: z.string(), details: z.string().nullable() })
const Aggregate = z.object({
  sensor_identifier: z.string(), severity: Severity, subject: z.string(), min_revision: z.number(), max_revision: z.number(),
  min_creation_timestamp: z.number(), max_creation_timestamp: z.number(), count: z.number()
})
const Rejection = z.object({
  position: z.number(), recorded_at: z.string(), kind: z.enum(['message', 'subscription', 'connection']),
  topic: z.string().nullable(), client_id: z.string(), reason: z.string(), detail: z.string(),
  payload_excerpt: z.string().nullable(), payload_bytes: z.number().nullable()
})
const SensorSummary = z.object({
  sensor_identifier: z.string(), sensor_name: z.string(), revision: z.number(),
  acknowledged_at: z.number().nullable(), success: z.boolean().nullable()
})
const NotFound = { 401: Detail, 404: Detail }

export interface SensorRoutesOptions { sensors: SensorQueries }

/** The reference's sensor API: registration, configuration revisions, measurements, logs. */
const sensorRoutes: FastifyPluginAsyncZod<SensorRoutesOptions> = async function (app, { sensors }) {
  const { store, accounts, devices } = app
  app.addHook('onRequest', app.requireUser)

  /** The sensor, if the caller is a member of its network; 404 otherwise. */
  function visibleSensor (sensorId: string, userId: string) {
    return app.visibleTo(userId, sensors.sensor(sensorId), SensorNotFound)
  }

  app.post('/sensors', {
    schema: {
      body: SensorBody,
      response: {
        201: z.object({ sensor_identifier: z.uuid(), revision: z.literal(0), mqtt: z.object({ username: z.string(), password: z.string() }) }),
        400: Detail, ...NotFound, 409: Detail
      }
    }
  }, async (request, reply) => {
    const { sensor_name, network_identifier, configuration } = request.body
    const sensorId = randomUUID()
    const password = newSecret()
    await store.handle({
      state: initialSensorState,
      decide: (command: SensorCommand, state) => decideSensor(command, state,
        { networkAllowed: accounts.isMember(network_identifier, request.userId), nameTaken: sensors.nameTaken(network_identifier, sensor_name) })
    }, `sensor-${sensorId}`,
    { type: 'RegisterSensor', sensor_identifier: sensorId, sensor_name, network_identifier, configuration, mqtt_password_sha256: sha256(password) },
    userMetadata(request))
    return reply.code(201).send({ sensor_identifier: sensorId, revision: 0, mqtt: { username: sensorId, password } })
  })

  app.put('/sensors/:sensor_identifier', {
    schema: {
      params: SensorParams,
      body: SensorBody,
      response: { 200: z.object({ sensor_identifier: z.string(), revision: z.number() }), 400: Detail, ...NotFound, 409: Detail }
    }
  }, async request => {
    const sensorId = request.params.sensor_identifier
    const { sensor_name, network_identifier, configuration } = request.body
    const [event] = await store.handle({
      state: () => visibleSensor(sensorId, request.userId).state,
      decide: (command: SensorCommand, state) => decideSensor(command, state,
        { networkAllowed: accounts.isMember(network_identifier, request.userId), nameTaken: sensors.nameTaken(network_identifier, sensor_name, sensorId) })
    }, `sensor-${sensorId}`, { type: 'ReviseConfiguration', sensor_identifier: sensorId, sensor_name, network_identifier, configuration }, userMetadata(request))
    if (event?.type !== 'SensorConfigurationRevised') throw new Error('a revision must record SensorConfigurationRevised')
    return { sensor_identifier: sensorId, revision: event.data.revision }
  })

  app.get('/sensors/:sensor_identifier', {
    schema: {
      params: SensorParams,
      response: {
        200: SensorSummary.extend({ network_identifier: z.string(), configuration: JsonObject, revised_at: z.string() }),
        ...NotFound
      }
    }
  }, async request => {
    const sensor = visibleSensor(request.params.sensor_identifier, request.userId)
    const current = sensors.configuration(sensor.sensor_id, sensor.revision)!
    return {
      sensor_identifier: sensor.sensor_id,
      sensor_name: sensor.sensor_name,
      network_identifier: sensor.network_id,
      revision: sensor.revision,
      configuration: JSON.parse(current.configuration) as JsonObject,
      revised_at: current.revised_at,
      acknowledged_at: current.acknowledged_at,
      success: current.success === null ? null : current.success === 1
    }
  })

  app.get('/networks/:network_identifier/sensors', {
    schema: { params: z.object({ network_identifier: z.string() }), response: { 200: z.array(SensorSummary), ...NotFound } }
  }, async request => {
    app.requireMember(request.params.network_identifier, request.userId)
    return sensors.sensorsOf(request.params.network_identifier).map(s => ({
      sensor_identifier: s.sensor_id, sensor_name: s.sensor_name, revision: s.revision,
      acknowledged_at: s.acknowledged_at, success: s.success === null ? null : s.success === 1
    }))
  })

  app.get('/sensors/:sensor_identifier/measurements', {
    schema: { params: SensorParams, querystring: PageQuery, response: { 200: z.array(Measurement), 400: Detail, ...NotFound } }
  }, async request => {
    const sensor = visibleSensor(request.params.sensor_identifier, request.userId)
    return sensors.measurements(sensor.sensor_id, request.query.creation_timestamp, request.query.direction)
  })

  app.get('/sensors/:sensor_identifier/logs', {
    schema: { params: SensorParams, querystring: PageQuery, response: { 200: z.array(LogEntry), 400: Detail, ...NotFound } }
  }, async request => {
    const sensor = visibleSensor(request.params.sensor_identifier, request.userId)
    return sensors.logs(sensor.sensor_id, request.query.creation_timestamp, request.query.direction)
  })

  app.get('/sensors/:sensor_identifier/logs/aggregates', {
    schema: { params: SensorParams, response: { 200: z.array(Aggregate), ...NotFound } }
  }, async request => sensors.aggregates(visibleSensor(request.params.sensor_identifier, request.userId).sensor_id))

  app.get('/sensors/:sensor_identifier/rejections', {
    schema: {
      params: SensorParams,
      querystring: z.object({ after: z.coerce.number().int().min(0).default(0), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      response: { 200: z.array(Rejection), 400: Detail, ...NotFound }
    }
  }, async request => {
    const sensor = visibleSensor(request.params.sensor_identifier, request.userId)
    return devices.rejections(`sensor-${sensor.sensor_id}`, request.query.after, request.query.limit)
  })
}

export default sensorRoutes
