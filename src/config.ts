import { existsSync } from 'node:fs'
import { z } from 'zod'

const port = z.coerce.number().int().min(0).max(65535)

export const ConfigSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(3000),
  MQTT_PORT: port.default(1883),
  DATABASE_PATH: z.string().min(1).default('data/devicelog.db'),
  /** Several nodes: the log in PostgreSQL (postgres://...), shared by them; DATABASE_PATH is then this node's replica of it. */
  /** Several nodes: how long the timers' lease lasts unless renewed (a dead node's timers wait at most this long for another). */
  TIMER_LEASE_SECONDS: z.coerce.number().int().min(3).default(15),
  /** Several nodes: their brokers share publishes through Redis (redis://host:port). */
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'a Redis url: redis://host:port').optional(),
  /** A balancer in front: its addresses (and CIDR ranges), comma-separated; believed in X-Forwarded-For and the PROXY protocol. */
  TRUST_PROXY: z.string().default('').transform(list => list.split(',').map(item => item.trim()).filter(item => item !== '')),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'a PostgreSQL url: postgres://user@host/database').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Shown by GET /status, as the reference did. */
  ENVIRONMENT: z.string().default('development'),
  COMMIT_SHA: z.string().default('unknown'),
  BRANCH_NAME: z.string().default('unknown'),
  /**
   * Most units of work committed in one transaction. Small enough that a group commits in a few
   * milliseconds under load (what a message waits behind), large enough that fsyncs stay few.
   */
  GROUP_COMMIT_MAX: z.coerce.number().int().min(1).max(100_000).default(200),
  /** How often GET /streams/<network> sends its measurement summary. */
  STREAM_SUMMARY_INTERVAL_SECONDS: z.coerce.number().positive().default(60),
  /** A device refused more often than this within a minute is disconnected (recorded once). */
  MQTT_MAX_REFUSALS_PER_MINUTE: z.coerce.number().int().min(1).default(100),
  /** Failed CONNECTs from one address within a minute: past half of it each CONNACK is held a second, past it the address is blocked. */
  MQTT_MAX_AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(2).default(10),
  /** How long a blocked address's MQTT connections are closed at the socket. */
  MQTT_AUTH_BLOCK_SECONDS: z.coerce.number().int().min(1).default(300),
  /** Past this many wrong passwords for one user within a minute, that user's logins are refused (429). */
  MAX_FAILED_LOGINS_PER_MINUTE: z.coerce.number().int().min(1).default(10),
  /** `open`: anyone may POST /users (the reference); `closed`: only with an existing user's bearer token. */
  SIGNUP: z.enum(['open', 'closed']).default('open'),
  /** POST /users a minute from one address; past it, 429. */
  SIGNUP_MAX_PER_MINUTE: z.coerce.number().int().min(1).default(20),
  /** Requests a minute from one address to the audit feed (GET /api/v1/events and its WebSocket); past it, 429. */
  AUDIT_MAX_PER_MINUTE: z.coerce.number().int().min(1).default(60),
  /** GET /api/v1/verify a minute from one address (each walks the whole log); past it, 429. */
  VERIFY_MAX_PER_MINUTE: z.coerce.number().int().min(1).default(6),
  /** The socket the reference's `/api/...` routes drive (its MQTT_TOPIC); unset: the first registered. */
  SOCKET_TOPIC: z.string().min(1).optional(),
  /** How long a command to a plug waits for its report. */
  SOCKET_REPLY_TIMEOUT_MS: z.coerce.number().int().positive().default(5000),
  /** How often a connected plug that has not confirmed its desired power is sent it again. */
  SOCKET_RESEND_SECONDS: z.coerce.number().positive().default(30),
  /** The zone (identifier or name) the reference's `/manual`, `/timer`, `/stop`, `/history`, `/ws` drive; unset: the first created. */
  IRRIGATION_ZONE: z.string().min(1).optional(),
  /** Whether those root routes answer without a bearer token, as the reference's did. */
  IRRIGATION_PUBLIC: z.enum(['true', 'false', '1', '0']).default('false').transform(value => value === 'true' || value === '1'),
  /** Readings a second a charger may send; the excess is refused and recorded. */
  CHARGER_MAX_RATE: z.coerce.number().positive().default(1),
  /** Serve DATABASE_PATH (a replay, a backup) for reading only: every write 405, no device connections, no timers. */
  READ_ONLY: z.enum(['true', 'false', '1', '0']).default('false').transform(value => value === 'true' || value === '1'),
  /** How long after the last signed checkpoint of the chain's head the next is recorded. */
  CHECKPOINT_INTERVAL_HOURS: z.coerce.number().positive().default(24),
  /** GET /metrics needs `Authorization: Bearer <this>` (401 otherwise); unset, it answers only the loopback address (403 otherwise). */
  METRICS_TOKEN: z.string().min(16, 'at least 16 characters (e.g. `openssl rand -hex 32`)').optional(),
  /** Publish Home Assistant MQTT discovery (configs, states, availability) and accept Home Assistant accounts. */
  HA_DISCOVERY: z.enum(['true', 'false', '1', '0']).default('false').transform(value => value === 'true' || value === '1'),
  /** Home Assistant's discovery prefix (its MQTT integration's setting): topic levels, no wildcards, not `$`. */
  HA_DISCOVERY_PREFIX: z.string().regex(/^(?!\$)[^/#+]+(\/[^/#+]+)*$/, 'topic levels without wildcards, not starting with $ or /').default('homeassistant'),
  /** `devicelog`: plugs are devicelog's (a switch each); `native`: left to Home Assistant's Tasmota integration. */
  HA_TASMOTA: z.enum(['devicelog', 'native']).default('devicelog')
})
export type Config = z.infer<typeof ConfigSchema>

/** Parse a configuration; tests pass only what they change. */
export function parseConfig (env: Record<string, string | undefined>): Config {
  const result = ConfigSchema.safeParse(env)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  throw new ConfigError(`${issue.path.join('.')}: ${issue.message}`)
}

export class ConfigError extends Error {}

/** The environment, with an optional `.env` file under it (the environment wins). */
export function loadConfig (envFile = '.env'): Config {
  if (existsSync(envFile)) process.loadEnvFile(envFile)
  return parseConfig(process.env)
}
