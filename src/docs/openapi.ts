import type { SwaggerTransform } from '@fastify/swagger'
import { createJsonSchemaTransform } from 'fastify-type-provider-zod'
import { Detail } from '../http/schemas.ts'

type Schema = Record<string, any>

/** The schemes a route's `security` may name; a route that needs none says `security: []`. */
export const securitySchemes = {
  bearer: { type: 'http', scheme: 'bearer', description: 'The access_token of POST /users or POST /authentication.' },
  access_token: {
    type: 'apiKey', in: 'query', name: 'access_token',
    description: 'The same token in the query, for clients that cannot set headers (EventSource, a browser\'s WebSocket).'
  },
  pair_token: { type: 'apiKey', in: 'query', name: 'token', description: 'A charger-widget pair\'s token, shown once by POST /api/v1/chargers.' },
  metrics_token: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN, the scraper\'s own token; unset, GET /metrics answers only this machine (loopback).' }
} as const

/** Unless a route says otherwise: a user's token, in the header or the query. */
export const defaultSecurity: Array<Record<string, string[]>> = [{ bearer: [] }, { access_token: [] }]

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** What a status means, unless the route's schema says better. */
const MEANINGS: Record<string, string> = {
  101: 'Switching Protocols: the WebSocket is open.',
  200: 'OK.',
  201: 'Created.',
  204: 'Done; nothing to answer.',
  400: 'Invalid input: the body, the query or the path does not match its schema (`detail` says where).',
  401: 'Missing or invalid bearer token (or wrong password).',
  403: 'Forbidden.',
  404: 'Not found, or in a network the caller is not a member of: existence is not leaked.',
  405: 'READ_ONLY=true: this service serves a copy of the log and records nothing.',
  409: 'Conflicts with what is recorded.',
  422: 'Invalid or missing input (the smart-socket reference\'s status for it).',
  429: 'Too many requests: retry after the seconds of the Retry-After header.',
  500: 'The device did not answer as asked, or an internal error (its details stay in the service\'s log).',
  503: 'The log cannot record this now (disk full, I/O error): nothing was recorded; retry later.'
}

export interface OpenApiTransformOptions {
  /** READ_ONLY: every write answers 405. */
  readOnly: boolean
  /** WebSocket routes whose author did not hide them (@fastify/websocket hides every one). */
  webSockets: WeakSet<object>
}

/**
 * zod to JSON schema (fastify-type-provider-zod), plus what every route shares and need not repeat:
 * 401 where a token is required, 503 on writes (the log may not record), 405 on writes under
 * READ_ONLY, each in the route's own error shape (`{detail}`, or the socket API's `{message}`);
 * a description for every status; WebSocket routes as a GET answered by 101.
 */
export function openApiTransform ({ readOnly, webSockets }: OpenApiTransformOptions) {
  const zodTransform = createJsonSchemaTransform({})
  const transform: SwaggerTransform = document => {
    if (!('openapiObject' in document)) throw new Error('the documentation is OpenAPI 3')
    const { route, url, openapiObject } = document
    const webSocket = webSockets.has(route)
    const { hide, ...schema } = (document.schema ?? {}) as Schema
    if (hide === true && !webSocket) return { schema: { hide: true }, url }

    const security: Array<Record<string, unknown>> = schema.security ?? openapiObject.security ?? []
    // A route that refuses a missing or bad token with another status (closed sign-up: 403) says so in its config.
    const needsToken = security.length > 0 && security.every(requirement => Object.keys(requirement).length > 0) &&
      security.some(requirement => 'bearer' in requirement) && route.config?.refusesTokenWith === undefined
    const writes = [route.method].flat().some(method => WRITES.has(method))
    const declared: Schema = schema.response ?? {}
    const errorShape = Object.entries(declared).find(([status]) => Number(status) >= 400)?.[1] ?? Detail
    const shared: Schema = {
      ...(needsToken ? { 401: errorShape } : {}),
      ...(writes ? { 503: errorShape } : {}),
      ...(writes && readOnly && route.config?.servedReadOnly !== true ? { 405: errorShape } : {})
    }
    const transformed = zodTransform({ ...document, schema: { ...schema, response: { ...shared, ...declared } } } as Parameters<typeof zodTransform>[0]).schema as Schema
    const responses: Schema = transformed.response
    if (webSocket) responses[101] = { type: 'null' }
    // (@fastify/swagger reads a response's description from this key, and keeps it out of the schema.)
    for (const [status, response] of Object.entries(responses)) {
      if (response.description === undefined) response['x-response-description'] ??= MEANINGS[status]
    }

    return {
      schema: {
        ...transformed,
        ...(webSocket
          ? {
              description: '**WebSocket**: a GET that asks for an upgrade; 101 opens it, any other status refuses it before the upgrade.' +
                (schema.description === undefined ? '' : `\n\n${schema.description}`)
            }
          : {})
      },
      url
    }
  }
  return transform
}
