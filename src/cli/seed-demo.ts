import { parseArgs } from 'node:util'

const usage = `usage: seed-demo [--url http://127.0.0.1:3000] [--username demo] [--password demo-password]
Creates, through the running service's API, the wallbox reference's demo pairs: charger c1234
with widget wABCD and charger c5678 with widget wEFGH, in a network "demo" of the user (created,
or logged in if it exists). Prints each pair's token and MQTT credentials once; pairs that
exist already are left as they are.`

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:3000' },
    username: { type: 'string', default: 'demo' },
    password: { type: 'string', default: 'demo-password' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (values.help === true) {
  process.stdout.write(usage + '\n')
  process.exit(0)
}

const PAIRS = [{ charger_id: 'c1234', widget_id: 'wABCD' }, { charger_id: 'c5678', widget_id: 'wEFGH' }]

async function call (method: string, path: string, body?: unknown, token?: string): Promise<{ status: number, body: any }> {
  const response = await fetch(values.url + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
}

function fail (message: string): never {
  process.stderr.write(`seed-demo: ${message}\n`)
  process.exit(1)
}

try {
  const credentials = { username: values.username, password: values.password }
  let session = await call('POST', '/users', credentials)
  if (session.status === 409) session = await call('POST', '/authentication', credentials)
  if (session.status !== 200 && session.status !== 201) fail(`could not sign up or log in as ${values.username}: ${session.status} ${JSON.stringify(session.body)}`)
  const token = session.body.access_token as string
  const networks = await call('GET', '/networks', undefined, token)
  let networkId = (networks.body as Array<{ network_identifier: string, network_name: string }>).find(n => n.network_name === 'demo')?.network_identifier
  networkId ??= (await call('POST', '/networks', { network_name: 'demo' }, token)).body.network_identifier as string
  const created = []
  for (const pair of PAIRS) {
    const result = await call('POST', '/api/v1/chargers', { ...pair, network_identifier: networkId }, token)
    if (result.status === 201) created.push(result.body)
    else if (result.status === 409) process.stderr.write(`seed-demo: ${pair.charger_id} exists already, left as it is\n`)
    else fail(`POST /api/v1/chargers ${pair.charger_id}: ${result.status} ${JSON.stringify(result.body)}`)
  }
  process.stdout.write(JSON.stringify({ user: values.username, access_token: token, network_identifier: networkId, pairs: created }, null, 2) + '\n')
} catch (error) {
  fail(`is the service running at ${values.url}? ${(error as Error).message}`)
}
