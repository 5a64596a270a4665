import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { PairId } from '../../events/chargers.ts'
import { userMetadata } from '../accounts/authentication.ts'
import { newSecret, sha256 } from '../accounts/secrets.ts'
import { ChargerNotFound } from '../errors.ts'
import { Detail } from '../http/schemas.ts'
import { decideCharger, initialChargerState, type ChargerCommand } from './decider.ts'
import type { RegistryQueries } from '../devices/registry.ts'
import type { ChargerQueries, ChargerRow } from './projections.ts'

const Errors = { 400: Detail, 401: Detail, 404: Detail, 409: Detail }
const Pair = z.object({
  charger_id: z.string(),
  widget_id: z.string(),
  network_identifier: z.string(),
  charging_status: z.enum(['charging', 'charging80', 'charged']).nullable(),
  soc: z.number().nullable()
})
const pairView = (row: ChargerRow): z.infer<typeof Pair> =>
  ({ charger_id: row.charger_id, widget_id: row.widget_id, network_identifier: row.network_id, charging_status: row.state.charging_status, soc: row.last_soc })

export interface ChargerRoutesOptions { chargers: ChargerQueries, registry: RegistryQueries }

/** Register, list and remove charger-widget pairs (the reference seeded them in its database). */
const chargerRoutes: FastifyPluginAsyncZod<ChargerRoutesOptions> = async function (app, { chargers, registry }) {
  app.addHook('onRequest', app.requireUser)

  app.post('/api/v1/chargers', {
    schema: {
      body: z.object({ charger_id: PairId, widget_id: PairId, network_identifier: z.string() })
        .meta({ examples: [{ charger_id: 'c1234', widget_id: 'wABCD', network_identifier: '0a71a8d8-40c6-4086-a64e-58e38350cb53' }] }),
      response: { 201: z.object({ charger_id: z.string(), widget_id: z.string(), token: z.string(), mqtt: z.object({ username: z.string(), password: z.string() }) }), ...Errors }
    }
  }, async (request, reply) => {
    const { charger_id, widget_id, network_identifier } = request.body
    const token = newSecret()
    const password = newSecret()
    // A removed pair's id may be registered again: its stream goes on.
    await app.store.handle({
      state: () => chargers.charger(charger_id)?.state ?? initialChargerState(),
      decide: (command: ChargerCommand, state) => decideCharger(command, state, {
        networkAllowed: app.accounts.isMember(network_identifier, request.userId),
        // An id is taken by any device's identifier or MQTT username, and by any pair's charger or widget.
        idTaken: charger_id === widget_id || app.devices.credentials(charger_id) !== undefined || registry.device(charger_id) !== undefined ||
          chargers.widget(widget_id) !== undefined || chargers.widget(charger_id) !== undefined || chargers.charger(widget_id) !== undefined
      })
    }, `charger-${charger_id}`,
    { type: 'RegisterCharger', charger_id, widget_id, network_identifier, token_sha256: sha256(token), mqtt_password_sha256: sha256(password) },
    userMetadata(request))
    return reply.code(201).send({ charger_id, widget_id, token, mqtt: { username: charger_id, password } })
  })

  app.get('/api/v1/chargers', { schema: { response: { 200: z.array(Pair), ...Errors } } },
    async request => chargers.chargersOf(request.userId).map(pairView))

  app.delete('/api/v1/chargers/:charger_id', { schema: { params: z.object({ charger_id: z.string() }), response: { 204: z.null(), ...Errors } } }, async (request, reply) => {
    const pair = app.visibleTo(request.userId, chargers.charger(request.params.charger_id), ChargerNotFound)
    await app.store.handle({
      state: () => app.visibleTo(request.userId, chargers.charger(pair.charger_id), ChargerNotFound).state,
      decide: (command: ChargerCommand, state) => decideCharger(command, state)
    }, `charger-${pair.charger_id}`, { type: 'RemoveCharger' }, userMetadata(request))
    return reply.code(204).send(null)
  })
}

export default chargerRoutes
