import closeWithGrace from 'close-with-grace'
import Fastify from 'fastify'
import app, { requestIds } from './app.ts'
import { systemClock } from './clock.ts'
import { ConfigError, loadConfig } from './config.ts'
import { loggerOptions } from './http/logging.ts'

// Process entry: configuration, logger, graceful close, listen. Nothing else.

let config
try {
  config = loadConfig()
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  process.stderr.write(`devicelog: invalid configuration: ${error.message}\n`)
  process.exit(1)
}

const server = Fastify({ logger: loggerOptions(config.LOG_LEVEL), ...requestIds, return503OnClosing: true, trustProxy: config.TRUST_PROXY.length > 0 ? config.TRUST_PROXY : false })
await server.register(app, { config, clock: systemClock })

// SIGINT/SIGTERM: stop accepting (HTTP and MQTT), commit what is queued, close the database.
closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  if (err !== undefined) server.log.error({ err }, 'closing after an error')
  else server.log.info({ signal }, 'closing')
  await server.close()
})

const httpUrl = await server.listen({ port: config.PORT, host: config.HOST })
if (config.READ_ONLY) {
  // A copy for reading: no device may connect to it, over TCP or WebSocket.
  server.log.info({ database: config.DATABASE_PATH, head: server.store.headPosition },
    'read-only: serving the log as it is in this file; writes answer 405, MQTT is not listening')
} else {
  const mqttPort = await server.broker.listen(config.MQTT_PORT, config.HOST)
  server.log.info({ mqtt: `mqtt://${config.HOST}:${mqttPort}`, websocket: `${httpUrl.replace(/^http/, 'ws')}/mqtt` }, 'MQTT broker listening')
}
