import t from 'tap'
import { decideSensor, evolveSensor, initialSensorState, type SensorEvent } from '../src/sensors/decider.ts'
import { NetworkNotFound, SensorNameTaken, SensorNotFound } from '../src/errors.ts'
import { deciderSpec } from './helpers/decider-spec.ts'

const spec = deciderSpec({ decide: decideSensor, evolve: evolveSensor, initialState: initialSensorState })
const id = '6d1c1c3e-51a4-4a51-8e32-0c59e7f1b0a1'
const network = '0a71a8d8-40c6-4086-a64e-58e38350cb53'
const registered: SensorEvent = {
  type: 'SensorRegistered',
  data: { sensor_identifier: id, sensor_name: 'bulbasaur', network_identifier: network, configuration: {}, mqtt_password_sha256: 'x' }
}
const revised = (revision: number): SensorEvent => ({
  type: 'SensorConfigurationRevised',
  data: { sensor_identifier: id, revision, sensor_name: 'bulbasaur', network_identifier: network, configuration: { value: revision } }
})
const heartbeat = (revision: number, success = true, timestamp = 100 + revision) => ({ revision, timestamp, success })

t.test('a revision follows the last one', async t => {
  spec(t).given([registered, revised(1)])
    .when({ type: 'ReviseConfiguration', sensor_identifier: id, sensor_name: 'bulbasaur', network_identifier: network, configuration: { a: 1 } })
    .then([{ type: 'SensorConfigurationRevised', data: { sensor_identifier: id, revision: 2, sensor_name: 'bulbasaur', network_identifier: network, configuration: { a: 1 } } }])
})

t.test('an unknown sensor cannot be revised', async t => {
  spec(t).given([])
    .when({ type: 'ReviseConfiguration', sensor_identifier: id, sensor_name: 'x', network_identifier: network, configuration: {} })
    .thenThrows(SensorNotFound)
})

t.test('registration refuses a taken name and a foreign network', async t => {
  const command = { type: 'RegisterSensor' as const, ...registered.data as Extract<SensorEvent, { type: 'SensorRegistered' }>['data'] }
  t.throws(() => decideSensor(command, initialSensorState(), { nameTaken: true, networkAllowed: true }), SensorNameTaken)
  t.throws(() => decideSensor(command, initialSensorState(), { nameTaken: false, networkAllowed: false }), NetworkNotFound)
  t.same(decideSensor(command, initialSensorState()), [registered])
})

t.test('the first heartbeat for a revision acknowledges it', async t => {
  spec(t).given([registered])
    .when({ type: 'RecordHeartbeats', sensor_identifier: id, heartbeats: [heartbeat(0, false), heartbeat(0, true)] })
    .then([
      { type: 'HeartbeatsReceived', data: { sensor_identifier: id, heartbeats: [heartbeat(0, false), heartbeat(0, true)] } },
      { type: 'ConfigurationAcknowledged', data: { sensor_identifier: id, revision: 0, success: false, acknowledged_at: 100 } }
    ])
})

t.test('later heartbeats for an acknowledged revision change nothing', async t => {
  spec(t).given([registered, { type: 'ConfigurationAcknowledged', data: { sensor_identifier: id, revision: 0, success: true, acknowledged_at: 1 } }])
    .when({ type: 'RecordHeartbeats', sensor_identifier: id, heartbeats: [heartbeat(0, false)] })
    .then([{ type: 'HeartbeatsReceived', data: { sensor_identifier: id, heartbeats: [heartbeat(0, false)] } }])
})

t.test('a heartbeat for a revision that does not exist acknowledges nothing', async t => {
  spec(t).given([registered])
    .when({ type: 'RecordHeartbeats', sensor_identifier: id, heartbeats: [heartbeat(5)] })
    .then([{ type: 'HeartbeatsReceived', data: { sensor_identifier: id, heartbeats: [heartbeat(5)] } }])
})

t.test('each pending revision is acknowledged by its own first heartbeat', async t => {
  spec(t).given([registered, revised(1), revised(2)])
    .when({ type: 'RecordHeartbeats', sensor_identifier: id, heartbeats: [heartbeat(2), heartbeat(1, false)] })
    .then([
      { type: 'HeartbeatsReceived', data: { sensor_identifier: id, heartbeats: [heartbeat(2), heartbeat(1, false)] } },
      { type: 'ConfigurationAcknowledged', data: { sensor_identifier: id, revision: 2, success: true, acknowledged_at: 102 } },
      { type: 'ConfigurationAcknowledged', data: { sensor_identifier: id, revision: 1, success: false, acknowledged_at: 101 } }
    ])
})

t.test('measurements and logs are recorded as they come', async t => {
  const measurements = [{ revision: 0, timestamp: 1.5, value: { what: 42 } }]
  spec(t).given([registered]).when({ type: 'RecordMeasurements', sensor_identifier: id, measurements })
    .then([{ type: 'MeasurementsRecorded', data: { sensor_identifier: id, measurements } }])
  const logMessages = [{ severity: 'error' as const, revision: 0, timestamp: 2, subject: 'hot' }]
  spec(t).given([registered]).when({ type: 'RecordLogMessages', sensor_identifier: id, log_messages: logMessages })
    .then([{ type: 'LogMessagesRecorded', data: { sensor_identifier: id, log_messages: logMessages } }])
})
