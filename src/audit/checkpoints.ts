import { existsSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { Timer } from '../clock.ts'
import { isoTime } from '../store/chain.ts'
import { CHECKPOINT_STREAM, checkpointKey, headOf, lastCheckpoint, publicKeyText, readCheckpointKey, signCheckpoint } from '../store/checkpoints.ts'

declare module 'fastify' {
  interface FastifyInstance {
    checkpoints: {
      /** The service's Ed25519 public key (raw, base64); none when a read-only copy has no key beside it. */
      readonly publicKey: string | undefined
    }
  }
}

export interface CheckpointOptions {
  /** The private key's file (created at the first start, mode 0600). */
  keyPath: string
  /** CHECKPOINT_INTERVAL_HOURS: how long after the last checkpoint the next is due. */
  intervalHours: number
}

/** A checkpoint that could not be recorded (the disk full) is tried again this soon. */
const RETRY_MS = 60 * 60 * 1000

/**
 * Every CHECKPOINT_INTERVAL_HOURS, a ChainCheckpoint: the committed head, signed with the
 * service's key. The due time is read from the log (an interval after the last checkpoint, or
 * after the first event when there is none), so a restart neither skips one nor adds one.
 * A read-only copy records none, and creates no key.
 */
export default fp<CheckpointOptions>(async function checkpointsPlugin (app, { keyPath, intervalHours }) {
  const { store, clock } = app
  if (store.readOnly) {
    const key = readCheckpointKey(keyPath)
    app.decorate('checkpoints', { publicKey: key === undefined ? undefined : publicKeyText(key) })
    return
  }
  const created = !existsSync(keyPath)
  const key = checkpointKey(keyPath)
  const publicKey = publicKeyText(key)
  app.decorate('checkpoints', { publicKey })
  if (created) app.log.info({ path: keyPath, public_key: publicKey }, 'created the key that signs the checkpoints: write its public key down elsewhere')

  const intervalMs = intervalHours * 60 * 60 * 1000
  const firstEventAt = () => store.db.prepare('SELECT recorded_at FROM events WHERE position = 1').pluck().get() as number | undefined
  const dueFromLog = () => (lastCheckpoint(store.db)?.recordedAt ?? firstEventAt() ?? clock.now()) + intervalMs
  let timer: Timer | undefined
  let closed = false
  const schedule = (due: number) => {
    if (!closed) timer = clock.setTimeout(record, due - clock.now())
  }

  function record () {
    timer = undefined
    store.transact(tx => {
      const head = headOf(store.db)
      // Nothing new since the last checkpoint: a checkpoint now would only sign that one.
      if (head.position === 0 || (lastCheckpoint(store.db)?.at ?? 0) >= head.position) return false
      tx.append(CHECKPOINT_STREAM, [signCheckpoint(key, head, isoTime(tx.now))], { metadata: { actor: 'system' } })
      return true
    }).then(recorded => schedule(recorded ? dueFromLog() : clock.now() + intervalMs), error => {
      app.log.error({ err: error }, 'could not record a checkpoint of the chain')
      schedule(clock.now() + Math.min(intervalMs, RETRY_MS))
    })
  }

  // On the node that runs the timers (app.timers): from the log, so a node taking over neither skips one nor adds one.
  app.timers.own('checkpoints', () => {
    closed = false
    schedule(dueFromLog())
    return () => {
      closed = true
      timer?.cancel()
    }
  })
}, { name: 'checkpoints', dependencies: ['store', 'timer-owner'] })
