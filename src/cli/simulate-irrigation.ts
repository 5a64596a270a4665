import { parseArgs } from 'node:util'
import { systemClock } from '../clock.ts'
import { startControllerSimulator } from './simulators/valve-controller.ts'

const usage = `usage: simulate-irrigation [--url http://127.0.0.1:3000] [--token TOKEN] [--zone ZONE_ID]
       [--min 5] [--max 60] [--duration SECONDS]
The reference's external control system: asks for a timer run at random intervals (between
--min and --max seconds) through the service's HTTP API. Without --zone it drives the default
zone through GET /timer, as the reference's controller did. Ctrl+C to stop.`

function fail (message: string): never {
  process.stderr.write(`simulate-irrigation: ${message}\n${usage}\n`)
  process.exit(2)
}

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:3000' },
    token: { type: 'string' },
    zone: { type: 'string' },
    min: { type: 'string', default: '5' },
    max: { type: 'string', default: '60' },
    duration: { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (values.help === true) {
  process.stdout.write(usage + '\n')
  process.exit(0)
}
const min = Number(values.min)
const max = Number(values.max)
if (!(min > 0) || !(max >= min)) fail('--min and --max are seconds, 0 < min <= max')
const duration = values.duration === undefined ? undefined : Number(values.duration)
if (duration !== undefined && !(duration > 0)) fail('--duration is a number of seconds')

const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`)
const controller = startControllerSimulator({
  url: values.url, token: values.token, zone: values.zone, minSeconds: min, maxSeconds: max, durationSeconds: duration,
  clock: systemClock,
  onTrigger: ({ status, body }) => log(`timer requested: ${status} ${body.slice(0, 200)}`),
  onError: error => process.stderr.write(`simulate-irrigation: ${error.message}\n`)
})
log(`asking ${values.url} for a timer every ${min} to ${max} s`)
process.once('SIGINT', () => { controller.stop(); process.exit(0) })
