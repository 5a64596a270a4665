import { readFileSync } from 'node:fs'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import { jsonSchemaTransformObject, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { asyncApiDocument } from './asyncapi.ts'
import { MqttTopics } from './mqtt-topics.ts'
import { defaultSecurity, openApiTransform, securitySchemes } from './openapi.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The MQTT topics of every kind of device, declared by each capability (`src/<capability>/topics.ts`). */
    mqttTopics: MqttTopics
  }
}

export interface DocsOptions {
  /** READ_ONLY: writes are documented with their 405. */
  readOnly: boolean
  /** The MQTT port devices connect to, once the broker listens. */
  mqttPort(): number
}

const manifest = z.object({ name: z.string(), version: z.string() })
  .parse(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')))

/**
 * The APIs describe themselves: OpenAPI 3.1 of every HTTP and WebSocket route from its zod
 * schemas (GET /docs/json, and Swagger UI at /docs, served from the package), and AsyncAPI 3 of
 * every MQTT topic the capabilities declare (GET /docs/asyncapi.json). Registered before any
 * route, so that every route is seen; none of it needs a token.
 */
export default fp(async function docs (instance, { readOnly, mqttPort }: DocsOptions) {
  const app = instance.withTypeProvider<ZodTypeProvider>()
  const webSockets = new WeakSet<object>()
  // Before @fastify/websocket's own onRoute hook, which hides every WebSocket route from the
  // document: the ones their author did not hide are documented.
  app.addHook('onRoute', route => {
    if (route.websocket === true && route.schema?.hide !== true) webSockets.add(route)
  })
  app.decorate('mqttTopics', new MqttTopics())

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: manifest.name,
        version: manifest.version,
        description: 'Every HTTP and WebSocket route of the service, generated from the schemas it validates with. ' +
          'Errors are `{"detail": "..."}` (the smart-socket routes: `{"message": "..."}`). The MQTT topics devices ' +
          'use are described by the AsyncAPI document at [/docs/asyncapi.json](/docs/asyncapi.json).'
      },
      components: { securitySchemes },
      security: defaultSecurity
    },
    transform: openApiTransform({ readOnly, webSockets }),
    transformObject: jsonSchemaTransformObject
  })
  // The page and its assets come from the package, not a CDN: it works on a site without internet.
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true, persistAuthorization: false } })

  app.get('/docs/asyncapi.json', {
    schema: {
      summary: 'The AsyncAPI 3 document of every MQTT topic a device publishes to or receives on',
      security: [],
      response: { 200: z.looseObject({ asyncapi: z.literal('3.0.0'), info: z.looseObject({ title: z.string(), version: z.string() }) }) }
    }
  }, async request => asyncApiDocument(app.mqttTopics.all, {
    title: `${manifest.name} MQTT`,
    version: manifest.version,
    host: request.hostname,
    mqttPort: mqttPort(),
    webSocketHost: request.host
  }))
}, { name: 'docs' })
