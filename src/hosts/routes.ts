import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { userMetadata } from '../accounts/authentication.ts'
import { newSecret, sha256 } from '../accounts/secrets.ts'
import { Detail } from '../http/schemas.ts'
import { decideHost, type HostCommand } from './decider.ts'

/** A host agent is registered as a device of kind `host` (the other kinds have their reference's routes). */
const hostRoutes: FastifyPluginAsyncZod = async function (app) {
  app.addHook('onRequest', app.requireUser)

  app.post('/api/v1/devices', {
    schema: {
      body: z.object({ name: z.string().min(1).max(200), kind: z.literal('host'), network_identifier: z.string() }),
      response: { 201: app.deviceKinds.View.extend({ mqtt: z.object({ username: z.string(), password: z.string() }) }), 400: Detail, 401: Detail, 404: Detail }
    }
  }, async (request, reply) => {
    const { name, network_identifier } = request.body
    const id = randomUUID()
    const password = newSecret()
    await app.store.handle({
      state: () => undefined,
      decide: (command: HostCommand) => decideHost(id, command, { networkAllowed: app.accounts.isMember(network_identifier, request.userId) })
    }, `host-${id}`, { type: 'RegisterHost', device_identifier: id, name, network_identifier, mqtt_password_sha256: sha256(password) }, userMetadata(request))
    return reply.code(201).send({ ...app.deviceKinds.view(app.deviceRegistry.device(id)!), mqtt: { username: id, password } })
  })
}

export default hostRoutes
