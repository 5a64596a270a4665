// `npm run cluster`: several devicelog nodes on one machine, as a site would run them on several:
// PostgreSQL holds the log, Redis carries publishes between the brokers, HAProxy balances MQTT
// and HTTP over the nodes. The engines come from Debian's packages (postgresql, redis-server,
// haproxy). Ctrl-C stops everything; the log and the replicas stay in CLUSTER_DIR.
import { createWriteStream, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { freePort, haproxyConfig, shieldFromTerminalSignals, startHaproxy, startNode, startPostgres, startRedis, type Engine, type NodeProcess } from './engines.ts'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    dir: { type: 'string', default: process.env.CLUSTER_DIR ?? 'data/cluster' },
    host: { type: 'string', default: process.env.HOST ?? '127.0.0.1' },
    port: { type: 'string', default: process.env.PORT ?? '3000' },
    'mqtt-port': { type: 'string', default: process.env.MQTT_PORT ?? '1883' }
  }
})
const count = Number(values.nodes)
if (!Number.isInteger(count) || count < 1) throw new Error('--nodes: a whole number of nodes, at least 1')
const dir = resolve(values.dir)
mkdirSync(dir, { recursive: true })

shieldFromTerminalSignals()
const engines: Engine[] = []
let stopping = false
async function stopAll (code: number): Promise<never> {
  stopping = true
  for (const node of nodes) node.process?.child.kill('SIGTERM')
  await Promise.all(nodes.map(node => node.process?.exited))
  for (const engine of engines.reverse()) await engine.stop().catch(() => {})
  process.exit(code)
}
process.once('SIGINT', () => void stopAll(0))
process.once('SIGTERM', () => void stopAll(0))

const RESTART_MS = 1000
const RESTART_RETRY_MS = 5000

interface ClusterNode { name: string, httpPort: number, mqttPort: number, process?: NodeProcess }
const nodes: ClusterNode[] = []

try {
  const postgres = await startPostgres({ dir: join(dir, 'postgres') })
  engines.push(postgres)
  const redis = await startRedis()
  engines.push(redis)
  for (let i = 1; i <= count; i++) nodes.push({ name: `node-${i}`, httpPort: await freePort(), mqttPort: await freePort() })

  /** A node, started again (as a service manager would) whenever it exits while the cluster runs. */
  const run = async (node: ClusterNode): Promise<void> => {
    const log = createWriteStream(join(dir, `${node.name}.log`), { flags: 'a' })
    node.process = await startNode({
      DATABASE_URL: postgres.url,
      REDIS_URL: redis.url,
      DATABASE_PATH: join(dir, `${node.name}.db`),
      PORT: String(node.httpPort),
      MQTT_PORT: String(node.mqttPort),
      // HAProxy connects from here: the client's own address is in X-Forwarded-For and the PROXY header.
      TRUST_PROXY: '127.0.0.1'
    }, line => log.write(line + '\n'))
    void node.process.exited.then(code => {
      log.end()
      if (stopping) return
      process.stdout.write(`${node.name} exited (${code ?? 'killed'}); starting it again\n`)
      void restart(node)
    })
  }
  /** Started again a second after it exited, and every 5 s while it fails to start. */
  const restart = async (node: ClusterNode): Promise<void> => {
    for (let wait = RESTART_MS; !stopping; wait = RESTART_RETRY_MS) {
      await new Promise(resolve => setTimeout(resolve, wait))
      if (stopping) return
      try {
        await run(node)
        return
      } catch (error) {
        process.stderr.write(`${node.name} could not start again (${(error as Error).message.split('\n')[0]}); trying again\n`)
      }
    }
  }
  await Promise.all(nodes.map(run))

  const httpPort = Number(values.port)
  const mqttPort = Number(values['mqtt-port'])
  engines.push(await startHaproxy(dir, haproxyConfig({ host: values.host, httpPort, mqttPort, nodes }), [httpPort, mqttPort]))

  const shown = values.host.includes(':') ? `[${values.host}]` : values.host
  process.stdout.write(`devicelog: ${count} nodes behind HAProxy

  HTTP and WebSockets   http://${shown}:${httpPort}
  MQTT                  mqtt://${shown}:${mqttPort}

  PostgreSQL (the log)  ${postgres.url}
  Redis (publishes)     ${redis.url}
${nodes.map(node => `  ${node.name.padEnd(21)} http://127.0.0.1:${node.httpPort}  mqtt://127.0.0.1:${node.mqttPort}  log ${join(dir, `${node.name}.log`)}`).join('\n')}

Audit the log: devicelog verify --database '${postgres.url}'
Ctrl-C stops the nodes, HAProxy, Redis and PostgreSQL; the log stays in ${join(dir, 'postgres')}.
`)
} catch (error) {
  process.stderr.write(`devicelog cluster: ${(error as Error).message}\n`)
  await stopAll(1)
}
