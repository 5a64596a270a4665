import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { userMetadata } from '../accounts/authentication.ts'
import { newSecret, sha256 } from '../accounts/secrets.ts'
import { Detail } from '../http/schemas.ts'
import { SERVICE_STATUS_TOPIC, STATE_PREFIX } from './declaration.ts'
import { accountStream } from './kind.ts'

export interface AccountRoutesOptions {
  /** HA_DISCOVERY_PREFIX, for the answer: Home Assistant's MQTT integration must use the same. */
  discoveryPrefix: string
}

const Account = z.object({
  account_identifier: z.string(),
  network_identifier: z.string(),
  /** Shown once: only its SHA-256 is kept. */
  mqtt: z.object({ port: z.number().nullable(), websocket_path: z.string(), username: z.string(), password: z.string() }),
  discovery_prefix: z.string(),
  birth_topic: z.string(),
  state_prefix: z.string(),
  status_topic: z.string()
})

/** `POST /api/v1/integrations/home-assistant`: MQTT credentials for one network's Home Assistant. */
const accountRoutes: FastifyPluginAsyncZod<AccountRoutesOptions> = async function (app, { discoveryPrefix }) {
  app.post('/api/v1/integrations/home-assistant', {
    onRequest: app.requireUser,
    schema: {
      body: z.object({ network_identifier: z.string() }),
      response: { 201: Account, 400: Detail, 401: Detail, 404: Detail }
    }
  }, async (request, reply) => {
    const { network_identifier } = request.body
    app.requireMember(network_identifier, request.userId)
    const accountId = randomUUID()
    const username = `homeassistant-${accountId}`
    const password = newSecret()
    await app.store.append(accountStream(accountId), [{
      type: 'HomeAssistantAccountCreated',
      data: { account_identifier: accountId, network_identifier, username, mqtt_password_sha256: sha256(password) }
    }], { expectedVersion: 'no_stream', metadata: userMetadata(request) })
    return reply.code(201).send({
      account_identifier: accountId,
      network_identifier,
      mqtt: { port: app.broker.port ?? null, websocket_path: '/mqtt', username, password },
      discovery_prefix: discoveryPrefix,
      birth_topic: `${discoveryPrefix}/status`,
      state_prefix: `${STATE_PREFIX}/`,
      status_topic: SERVICE_STATUS_TOPIC
    })
  })
}

export default accountRoutes
