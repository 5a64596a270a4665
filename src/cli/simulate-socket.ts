import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { systemClock } from '../clock.ts'
import { PlugSimulator } from './simulators/plug.ts'

const usage = `usage: simulate-socket --topic TOPIC --username USER --password PASS
       [--url mqtt://127.0.0.1:1883] [--firmware basic|real] [--watts 100] [--full-topic %prefix%/%topic%/]
A simulated Tasmota plug. Press Enter to press its button; Ctrl+C to disconnect and quit.`

function fail (message: string): never {
  process.stderr.write(`simulate-socket: ${message}\n${usage}\n`)
  process.exit(2)
}

const { values } = parseArgs({
  options: {
    topic: { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
    firmware: { type: 'string', default: 'basic' },
    watts: { type: 'string', default: '100' },
    'full-topic': { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  }
})

if (values.help === true) {
  process.stdout.write(usage + '\n')
  process.exit(0)
}
const { topic, username, password, firmware } = values
if (topic === undefined || username === undefined || password === undefined) fail('--topic, --username and --password are required')
if (firmware !== 'basic' && firmware !== 'real') fail(`--firmware is basic or real, not ${firmware}`)
const watts = Number(values.watts)
if (!Number.isFinite(watts) || watts < 0) fail(`--watts is a number of watts, not ${values.watts}`)

const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`)

const plug = new PlugSimulator({
  url: values.url, username, password, topic, firmware, watts, fullTopic: values['full-topic'], clock: systemClock, reconnect: true
})
plug.on('command', ({ topic, payload }) => log(`<- ${topic} ${payload}`))
plug.on('published', ({ topic, payload, retain }) => log(`-> ${topic} ${payload}${retain ? ' (retained)' : ''}`))
plug.on('connected', count => log(`connected to ${values.url} as ${plug.clientId} (connection ${count})`))
plug.on('disconnected', () => log('disconnected'))
plug.on('connectionError', error => process.stderr.write(`simulate-socket: ${error.message}\n`))

try {
  await plug.connect()
} catch (error) {
  fail(`could not connect to ${values.url}: ${(error as Error).message}`)
}

const button = process.stdin.isTTY ? createInterface({ input: process.stdin, terminal: false }) : undefined
button?.on('line', () => {
  plug.press().catch((error: Error) => process.stderr.write(`simulate-socket: ${error.message}\n`))
  log(`button pressed: relay ${plug.isOn ? 'ON' : 'OFF'}`)
})

process.once('SIGINT', () => {
  button?.close()
  plug.close().then(() => process.exit(0), () => process.exit(1))
})
