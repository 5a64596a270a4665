import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { copyFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { chainHash, GENESIS_HASH, isoTime } from '../src/store/chain.ts'
import { checkpointKeyPath, signCheckpoint } from '../src/store/checkpoints.ts'
import { namesById } from '../src/store/database.ts'
import { devicelog } from './helpers/process.ts'
import { createSensor, http, startService, tempDir, type Service } from './helpers/service.ts'

// Proof against rewriting: signed checkpoints of the chain's head, and a head kept elsewhere.
// A rewrite that recomputes every later hash keeps the chain consistent; it is caught by both.

const T0 = Date.UTC(2026, 0, 1)
const HOUR = 3_600_000
const DAY = 24 * HOUR

/** A unit queued after what the clock's timers queued commits with it: then the log is as they left it. */
const settled = (service: Service) => service.app.store.transact(() => undefined)
const checkpoints = (service: Service) => service.app.store.read({ type: 'ChainCheckpoint' })
const revise = (service: Service, sensor: Awaited<ReturnType<typeof createSensor>>, interval: number) =>
  http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'probe', network_identifier: sensor.networkId, configuration: { interval } }
  })

type Row = [number, number, number, number, number, number, string, string]

/**
 * What someone who can write the file does to change the past unseen by the chain: edit one
 * event, then recompute every later hash. `checkpoints` says what they do with the signed ones:
 * leave them, put the new hashes in them (the signature cannot follow), or sign them anew with a key of their own.
 */
function rewrite (path: string, position: number, edit: (data: string) => string, checkpoints: 'leave' | 'forge' | KeyObject) {
  const db = new Database(path)
  try {
    db.exec('DROP TRIGGER events_are_append_only_update')
    const { streams, types } = namesById(db)
    const hashAt = db.prepare('SELECT lower(hex(hash)) FROM events WHERE position = ?').pluck()
    const update = db.prepare('UPDATE events SET data = ?, hash = ? WHERE position = ?')
    let previous = position === 1 ? GENESIS_HASH : hashAt.get(position - 1) as string
    const rows = db.prepare('SELECT position, stream, stream_version, type, schema_version, recorded_at, data, metadata FROM events WHERE position >= ? ORDER BY position').raw().all(position) as Row[]
    for (const [at, stream, version, type, schemaVersion, recordedAt, stored, metadata] of rows) {
      let data = at === position ? edit(stored) : stored
      if (types[type] === 'ChainCheckpoint' && checkpoints !== 'leave') {
        const checkpoint = JSON.parse(data)
        const head = { position: checkpoint.position as number, hash: hashAt.get(checkpoint.position) as string }
        data = JSON.stringify(checkpoints === 'forge' ? { ...checkpoint, hash: head.hash } : signCheckpoint(checkpoints, head, checkpoint.signed_at).data)
      }
      const hash = chainHash(previous, at, streams[stream]!, version, types[type]!, schemaVersion, isoTime(recordedAt), data, metadata)
      update.run(data, hash, at)
      previous = hash.toString('hex')
    }
  } finally {
    db.close()
  }
}

t.test('a signed checkpoint a day, due from the log; verify checks them and a kept head; a rewrite fails both', async t => {
  const dir = tempDir(t)
  const clock = new ManualClock(T0)
  const service = await startService(t, { clock, dir })
  const sensor = await createSensor(service, { configuration: { interval: 5 } })
  await revise(service, sensor, 10)
  const edited = service.app.store.read({ type: 'SensorConfigurationRevised' })[0]!.position
  const kept = (await http(service, 'GET', '/api/v1/verify', { token: sensor.token })).body
  t.match(kept, { ok: true, count: service.app.store.headPosition, head: /^[0-9a-f]{64}$/, public_key: /^[A-Za-z0-9+/]{43}=$/, checkpoints: { holding: 0, keys: [] } })
  const keptHead = `${kept.count}:${kept.head}`
  const publicKey = kept.public_key as string
  t.equal(statSync(checkpointKeyPath(service.databasePath)).mode & 0o777, 0o600, 'the key file beside the database is its owner\'s only')

  clock.advance(DAY - 1)
  await settled(service)
  t.equal(checkpoints(service).length, 0, 'none before a day after the first event')
  clock.advance(1)
  await settled(service)
  const [first] = checkpoints(service)
  t.match(first, { stream_id: 'chain', position: kept.count + 1, data: { position: kept.count, hash: kept.head, signed_at: isoTime(T0 + DAY), public_key: publicKey } })

  await revise(service, sensor, 20)
  const before = service.app.store.headPosition
  clock.advance(DAY)
  await settled(service)
  t.match(checkpoints(service).at(-1)!.data, { position: before, signed_at: isoTime(T0 + 2 * DAY) }, 'the next a day after it')
  await revise(service, sensor, 30)
  await service.close()

  // After a restart the next is due a day after the last recorded one, not a day after the start.
  const later = new ManualClock(T0 + 2 * DAY + 23 * HOUR)
  const restarted = await startService(t, { clock: later, dir })
  later.advance(HOUR - 1)
  await settled(restarted)
  t.equal(checkpoints(restarted).length, 2)
  later.advance(1)
  await settled(restarted)
  t.equal(checkpoints(restarted).length, 3, 'due at the last one\'s time and a day')
  later.advance(DAY)
  await settled(restarted)
  t.equal(checkpoints(restarted).length, 3, 'a quiet day adds none: nothing new to sign')
  const now = (await http(restarted, 'GET', `/api/v1/verify?expect=${keptHead}`, { token: sensor.token })).body
  t.match(now, { ok: true, public_key: publicKey, expected: keptHead, checkpoints: { holding: 3, keys: [publicKey] } })
  t.equal((await http(restarted, 'GET', '/api/v1/verify?expect=12:abc', { token: sensor.token })).status, 400)
  await restarted.close()

  const live = restarted.databasePath
  const [plain, expect] = await Promise.all([devicelog(['verify', '--database', live]), devicelog(['verify', '--database', live, '--expect', keptHead])])
  t.equal(plain.code, 0, plain.stdout)
  const lines = plain.stdout.split('\n')
  t.match(lines[0], /^OK (\d+) events, head \1:[0-9a-f]{64} \(/)
  t.match(lines[1], `checkpoints: 3 hold, signed by ${publicKey}; the last at position `)
  t.equal(lines[2], `public key: ${publicKey} (${checkpointKeyPath(live)})`)
  t.equal(expect.code, 0, expect.stdout)
  t.match(expect.stdout, `EXPECTED ${keptHead} holds: the first ${kept.count} events are those that had that head\n`)

  // Three rewrites of the first revision (interval 10 -> 1000), every later hash recomputed.
  t.ok(edited <= kept.count)
  const copy = (name: string, checkpoints: 'leave' | 'forge' | KeyObject) => {
    const path = join(dir, name)
    copyFileSync(live, path)
    rewrite(path, edited, data => data.replace('"interval":10', '"interval":1000'), checkpoints)
    return path
  }
  const forged = copy('forged.db', 'forge')
  const left = copy('left.db', 'leave')
  const resigned = copy('resigned.db', generateKeyPairSync('ed25519').privateKey)
  const [forgedPlain, forgedExpect, leftPlain, resignedPlain, resignedTrusted] = await Promise.all([
    devicelog(['verify', '--database', forged]),
    devicelog(['verify', '--database', forged, '--expect', keptHead]),
    devicelog(['verify', '--database', left]),
    devicelog(['verify', '--database', resigned]),
    devicelog(['verify', '--database', resigned, '--public-key', publicKey])
  ])
  const firstAt = first!.position
  t.match(forgedPlain.stdout, /^OK \d+ events, head /, 'the chain alone holds: it was recomputed')
  t.equal(forgedPlain.code, 1)
  t.match(forgedPlain.stdout, `\nCHECKPOINT BROKEN at position ${firstAt}: the checkpoint at position ${firstAt} (head ${kept.count}:`)
  t.match(forgedPlain.stdout, 'its signature does not hold: it was changed after it was signed')
  t.equal(forgedExpect.code, 1)
  t.match(forgedExpect.stdout, `\nDIFFERS at position ${kept.count}: the log's head at position ${kept.count} is `)
  t.match(forgedExpect.stdout, `not the expected ${kept.head}: history up to it was rewritten`)
  t.equal(leftPlain.code, 1)
  t.match(leftPlain.stdout, `CHECKPOINT BROKEN at position ${firstAt}: the checkpoint at position ${firstAt} signed head ${keptHead} at ${isoTime(T0 + DAY)}, but the log's hash at position ${kept.count} is `)
  t.equal(resignedPlain.code, 0, 'signed anew with another key, the checkpoints agree with themselves')
  t.notMatch(resignedPlain.stdout, publicKey)
  t.equal(resignedTrusted.code, 1, 'but not with the key kept elsewhere')
  t.match(resignedTrusted.stdout, `CHECKPOINT BROKEN at position ${firstAt}: the checkpoint at position ${firstAt} is signed by another key`)

  // The service answers the same, with its own key (copied beside the rewritten file), on the file served read-only.
  copyFileSync(checkpointKeyPath(live), checkpointKeyPath(forged))
  const served = await startService(t, { dir, env: { DATABASE_PATH: forged, READ_ONLY: 'true' } })
  const verify = async (query = '') => (await http(served, 'GET', `/api/v1/verify${query}`, { token: sensor.token })).body
  t.match(await verify(), { ok: false, position: firstAt, reason: /its signature does not hold/, public_key: publicKey, checkpoints: { holding: 0 } })
  t.match(await verify(`?expect=${keptHead}`), { ok: false, position: kept.count, reason: /history up to it was rewritten/ })
})
