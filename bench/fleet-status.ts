// GET /status every `intervalMs` over one keep-alive connection, as an HTTP client of the service
// would, from a process of its own: in the service's process the client's own sends and reads
// would wait on the very event loop being measured. Polls until its stdin ends, then writes the
// requests (when each was sent, ms since the epoch, and its latency in ms: one JSON array) to stdout.
import { request, Agent } from 'node:http'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'

const [url, interval] = process.argv.slice(2) as [string, string]
const intervalMs = Number(interval)
const agent = new Agent({ keepAlive: true, maxSockets: 1 })

function get (): Promise<number> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    request(`${url}/status`, { agent }, response => {
      response.resume()
      response.once('end', () => response.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`GET /status: ${response.statusCode}`)))
    }).once('error', reject).end()
  })
}

let polling = true
process.stdin.resume()
process.stdin.once('end', () => { polling = false })
await get() // the keep-alive connection, opened before the storm
process.stdout.write('ready\n')
const requests: Array<[sentAt: number, latency: number]> = []
while (polling) {
  const started = performance.now()
  const sentAt = Date.now()
  requests.push([sentAt, await get()])
  // One request at a time: a slow answer delays the next rather than piling up behind it.
  await delay(Math.max(0, intervalMs - (performance.now() - started)))
}
process.stdout.write(JSON.stringify(requests) + '\n')
agent.destroy()
