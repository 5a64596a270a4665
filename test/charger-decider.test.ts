import t, { type Test } from 'tap'
import {
  chargingStatusOf, decideCharger, evolveCharger, initialChargerState,
  type ChargerCommand, type ChargerContext, type ChargerEvent, type ChargerState
} from '../src/chargers/decider.ts'
import { ChargerIdTaken, ChargerNotFound, NetworkNotFound } from '../src/errors.ts'
import { deciderSpec } from './helpers/decider-spec.ts'

// A wallbox charger and its widget, given/when/then on the decider: registration, the widget's
// status thresholds, status changes only when the status changes, and the reading rate.

type Assert = Pick<Test, 'same' | 'throws'>
/** An event as the log gives it back: the decider's state takes the time of a reading from recorded_at. */
type Logged = ChargerEvent & { recorded_at?: string }

const facts: ChargerContext = { networkAllowed: true, idTaken: false }
const spec = (t: Assert, context: Partial<ChargerContext> = {}) => deciderSpec<ChargerCommand, ChargerState, Logged>({
  decide: (command, state) => decideCharger(command, state, { ...facts, ...context }),
  evolve: evolveCharger,
  initialState: initialChargerState
})(t)

const charger_id = 'c1234'
const widget_id = 'wABCD'
const network_identifier = '0a71a8d8-40c6-4086-a64e-58e38350cb53'
const at = Date.UTC(2026, 0, 1, 8)
const iso = (ms: number) => new Date(ms).toISOString()
const INTERVAL = 1000
const client_id = 'ws:7d0c5a0e-1111-4b5e-9d51-2f7c6a0e4b12'
const topic = `/chargers/${charger_id}`

const registration = { charger_id, widget_id, network_identifier, token_sha256: 'token-hash', mqtt_password_sha256: 'password-hash' }
const register: ChargerCommand = { type: 'RegisterCharger', ...registration }
const registered: Logged = { type: 'ChargerRegistered', data: registration, recorded_at: iso(at - 60_000) }
const removed: Logged = { type: 'ChargerRemoved', data: { charger_id, widget_id }, recorded_at: iso(at - 30_000) }
const reported = (soc: number, when: number, via: 'websocket' | 'mqtt' = 'websocket'): Logged =>
  ({ type: 'StateOfChargeReported', data: { charger_id, soc, via }, recorded_at: iso(when) })
const changed = (status: 'charging' | 'charging80' | 'charged', when?: number): Logged =>
  ({ type: 'ChargingStatusChanged', data: { charger_id, widget_id, status }, ...(when === undefined ? {} : { recorded_at: iso(when) }) })
const report = (soc: number, when = at, via: 'websocket' | 'mqtt' = 'websocket', min_interval_ms = INTERVAL): ChargerCommand =>
  ({ type: 'ReportStateOfCharge', soc, via, at: when, min_interval_ms, client_id, topic })
/** What the decider gives back (no recorded_at: that is the log's). */
const accepted = (soc: number, via: 'websocket' | 'mqtt' = 'websocket'): ChargerEvent =>
  ({ type: 'StateOfChargeReported', data: { charger_id, soc, via } })
const statusChanged = (status: 'charging' | 'charging80' | 'charged'): ChargerEvent =>
  ({ type: 'ChargingStatusChanged', data: { charger_id, widget_id, status } })

t.test('registration', async t => {
  t.test('records the pair', async t => {
    spec(t).given([]).when(register).then([{ type: 'ChargerRegistered', data: registration }])
  })
  t.test('refuses a network the user is not a member of with a 404', async t => {
    spec(t, { networkAllowed: false }).given([]).when(register).thenThrows(NetworkNotFound)
    spec(t, { networkAllowed: false }).given([]).when(register).thenThrows({ statusCode: 404, code: 'DL_NETWORK_NOT_FOUND' })
  })
  t.test('refuses an id another device or widget uses with a 409', async t => {
    spec(t, { idTaken: true }).given([]).when(register).thenThrows(ChargerIdTaken)
    spec(t, { idTaken: true }).given([]).when(register).thenThrows({ statusCode: 409, code: 'DL_CHARGER_ID_TAKEN' })
  })
  t.test('refuses a charger registered already with a 409', async t => {
    spec(t).given([registered]).when(register).thenThrows({ statusCode: 409, code: 'DL_CHARGER_ID_TAKEN' })
    spec(t).given([registered, reported(50, at - 5000), changed('charging')]).when(register).thenThrows(ChargerIdTaken)
  })
  t.test('checks the network before the id', async t => {
    spec(t, { networkAllowed: false, idTaken: true }).given([registered]).when(register).thenThrows(NetworkNotFound)
  })
  t.test('a removed charger may be registered again', async t => {
    spec(t).given([registered, reported(100, at - 40_000), changed('charged'), removed]).when(register)
      .then([{ type: 'ChargerRegistered', data: registration }])
  })
  t.test('a new registration starts with no status and no reading', async t => {
    const state = [registered, reported(100, at - 40_000), changed('charged'), removed, registered].reduce(evolveCharger, initialChargerState())
    t.same(state, { status: 'registered', charger_id, widget_id, charging_status: null, last_reading_at: null })
  })
})

t.test('every other command needs a registered charger (404)', async t => {
  for (const command of [report(50), { type: 'RemoveCharger' } satisfies ChargerCommand]) {
    spec(t).given([]).when(command).thenThrows(ChargerNotFound)
    spec(t).given([]).when(command).thenThrows({ statusCode: 404, code: 'DL_CHARGER_NOT_FOUND' })
  }
})

t.test('removing a charger', async t => {
  t.test('records the removal with its widget', async t => {
    spec(t).given([registered]).when({ type: 'RemoveCharger' }).then([{ type: 'ChargerRemoved', data: { charger_id, widget_id } }])
  })
  t.test('then a report is refused: ChargerNotFound 404', async t => {
    spec(t).given([registered, reported(50, at - 5000), changed('charging'), removed]).when(report(60)).thenThrows(ChargerNotFound)
    spec(t).given([registered, removed]).when(report(60)).thenThrows({ statusCode: 404, code: 'DL_CHARGER_NOT_FOUND' })
  })
  t.test('cannot be removed twice', async t => {
    spec(t).given([registered, removed]).when({ type: 'RemoveCharger' }).thenThrows(ChargerNotFound)
  })
})

t.test('the status thresholds (the reference\'s)', async t => {
  const cases: Array<[number, 'charging' | 'charging80' | 'charged']> = [
    [0, 'charging'], [0.5, 'charging'], [50, 'charging'], [79.9, 'charging'],
    [80, 'charging80'], [90, 'charging80'], [99.9, 'charging80'],
    [100, 'charged']
  ]
  for (const [soc, status] of cases) {
    t.equal(chargingStatusOf(soc), status, `soc ${soc} → ${status}`)
    // The first reading of a charger always sets the widget's status.
    spec(t).given([registered]).when(report(soc)).then([accepted(soc), statusChanged(status)])
  }
})

t.test('the status changes only when it changes', async t => {
  t.test('the first reading sets it', async t => {
    spec(t).given([registered]).when(report(50)).then([accepted(50), statusChanged('charging')])
  })
  t.test('a reading with the same status records only the reading', async t => {
    spec(t).given([registered, reported(50, at - 5000), changed('charging')]).when(report(60)).then([accepted(60)])
    spec(t).given([registered, reported(85, at - 5000), changed('charging80')]).when(report(99.9)).then([accepted(99.9)])
    spec(t).given([registered, reported(100, at - 5000), changed('charged')]).when(report(100)).then([accepted(100)])
  })
  t.test('crossing 80 changes it to charging80', async t => {
    spec(t).given([registered, reported(50, at - 5000), changed('charging'), reported(60, at - 3000)])
      .when(report(80)).then([accepted(80), statusChanged('charging80')])
  })
  t.test('reaching 100 changes it to charged', async t => {
    spec(t).given([registered, reported(90, at - 5000), changed('charging80')]).when(report(100, at, 'mqtt')).then([accepted(100, 'mqtt'), statusChanged('charged')])
  })
  t.test('going back below 80 (a new car) changes it back to charging', async t => {
    spec(t).given([registered, reported(100, at - 5000), changed('charged')]).when(report(10)).then([accepted(10), statusChanged('charging')])
    spec(t).given([registered, reported(100, at - 5000), changed('charged')]).when(report(80)).then([accepted(80), statusChanged('charging80')])
  })
  t.test('the status evolves from ChargingStatusChanged', async t => {
    const state = [registered, reported(50, at - 5000), changed('charging'), reported(85, at - 3000), changed('charging80')]
      .reduce(evolveCharger, initialChargerState())
    t.same(state, { status: 'registered', charger_id, widget_id, charging_status: 'charging80', last_reading_at: at - 3000 })
  })
})

t.test('the reading rate', async t => {
  const rejected = (soc: number, interval = INTERVAL): ChargerEvent => {
    const payload = JSON.stringify({ soc })
    return {
      type: 'MessageRejected',
      data: {
        topic, client_id, username: charger_id, reason: 'rate_exceeded',
        detail: `at most one reading every ${interval} ms (CHARGER_MAX_RATE)`, payload_excerpt: payload, payload_bytes: payload.length
      }
    }
  }
  const lastAt = at - 10_000
  const history = [registered, reported(50, lastAt), changed('charging')]

  t.test('a reading within the interval of the last accepted one is rejected: rate_exceeded', async t => {
    spec(t).given(history).when(report(60, lastAt + 1)).then([rejected(60)])
    spec(t).given(history).when(report(90, lastAt + INTERVAL - 1)).then([rejected(90)])
    // Even one at the same instant, and even one that would change the status.
    spec(t).given(history).when(report(100, lastAt)).then([rejected(100)])
  })
  t.test('a reading exactly the interval later is accepted', async t => {
    spec(t).given(history).when(report(60, lastAt + INTERVAL)).then([accepted(60)])
    spec(t).given(history).when(report(85, lastAt + INTERVAL)).then([accepted(85), statusChanged('charging80')])
  })
  t.test('the interval is the command\'s (CHARGER_MAX_RATE)', async t => {
    spec(t).given(history).when(report(60, lastAt + 499, 'websocket', 500)).then([rejected(60, 500)])
    spec(t).given(history).when(report(60, lastAt + 500, 'websocket', 500)).then([accepted(60)])
  })
  t.test('only accepted readings count: a rejection does not move the window', async t => {
    const rejection = { ...rejected(60), recorded_at: iso(lastAt + 500) } satisfies Logged
    spec(t).given([...history, rejection]).when(report(70, lastAt + INTERVAL)).then([accepted(70)])
  })
  t.test('the window is from the last reading\'s recorded_at', async t => {
    const state = history.reduce(evolveCharger, initialChargerState())
    t.same(state, { status: 'registered', charger_id, widget_id, charging_status: 'charging', last_reading_at: lastAt })
    spec(t).given([...history, reported(55, lastAt + 5000)]).when(report(60, lastAt + 5500)).then([rejected(60)])
  })
  t.test('the first reading of a charger is never rate limited', async t => {
    spec(t).given([registered]).when(report(42, at)).then([accepted(42), statusChanged('charging')])
  })
  t.test('the rejection names the sender, the topic and the payload', async t => {
    const [event] = decideCharger({ ...report(33, lastAt + 10), client_id: 'mqtt-client-9', topic: 'chargers/c1234/state-of-charge', via: 'mqtt' } as ChargerCommand,
      history.reduce(evolveCharger, initialChargerState()))
    t.match(event, {
      type: 'MessageRejected',
      data: { client_id: 'mqtt-client-9', topic: 'chargers/c1234/state-of-charge', username: charger_id, reason: 'rate_exceeded', payload_excerpt: '{"soc":33}', payload_bytes: 10 }
    })
  })
})
