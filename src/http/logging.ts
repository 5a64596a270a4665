import type { FastifyRequest } from 'fastify'

/**
 * Browsers cannot give a WebSocket (or an EventSource) a header, so tokens travel in the query
 * string there (`access_token`, and the charger/widget pair's `token`); a request log must not
 * keep them.
 */
export function redactedUrl (url: string): string {
  return url.replace(/([?&](?:access_token|token)=)[^&#]*/gi, '$1[redacted]')
}

/** The logger's options: Fastify's request line, with the URL's secrets redacted. */
export function loggerOptions (level: string) {
  return {
    level,
    serializers: {
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: redactedUrl(request.url),
        host: request.host,
        remoteAddress: request.ip,
        remotePort: request.socket?.remotePort
      })
    }
  }
}
