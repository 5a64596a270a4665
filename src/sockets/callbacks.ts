import type { FastifyBaseLogger } from 'fastify'
import type { Clock } from '../clock.ts'
import type { EventStore } from '../store/event-store.ts'
import type { PlugControl } from './plug-control.ts'
import type { CallbackRow, SocketQueries } from './projections.ts'
import { instanceView } from './views.ts'

export const CALLBACK_MAX_ATTEMPTS = 5
const FIRST_RETRY_MS = 1000
const REQUEST_TIMEOUT_MS = 10_000

const messages: Record<string, string> = {
  requested: 'instance stopped',
  duration: 'instance stopped: its duration is over',
  timeout: 'instance stopped: its timeout passed',
  emergency: 'instance stopped by an emergency stop',
  pressed: 'instance stopped: the socket was switched off by hand',
  no_answer: 'instance could not start: the socket did not answer',
  plug_answered_off: 'instance could not start: the socket answered OFF'
}

interface CallbackOptions {
  store: EventStore
  clock: Clock
  sockets: SocketQueries
  control: PlugControl
  log: FastifyBaseLogger
}

/**
 * The reference's callbacks: `PUT <url>` with `{message, instance}` when an instance ends (or
 * `{waiting: false}` when a wait does), whatever the outcome. Each attempt is an event; failed
 * ones are retried with exponential backoff, up to CALLBACK_MAX_ATTEMPTS, across restarts.
 */
export function startCallbackDelivery ({ store, clock, sockets, control, log }: CallbackOptions): () => void {
  let stopped = false
  const timers = new Set<{ cancel(): void }>()

  function body (callback: CallbackRow): unknown {
    if (callback.subject === 'wait') return { waiting: false }
    const instance = sockets.instance(callback.socket_id, callback.subject_id)
    if (instance === undefined) return { message: 'instance deleted', instance: null }
    const view = instanceView(sockets, instance)
    return { message: messages[view.stopReason ?? 'requested'] ?? 'instance stopped', instance: view }
  }

  async function attempt (callback: CallbackRow): Promise<void> {
    if (stopped) return
    const number = (JSON.parse(callback.attempts) as unknown[]).length + 1
    let status: number | null = null
    let error: string | null = null
    try {
      const response = await fetch(callback.url, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body(callback)),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
      })
      status = response.status
      await response.body?.cancel()
      if (!response.ok) error = `HTTP ${response.status}`
    } catch (cause) {
      error = (cause as Error).message
    }
    if (stopped) return
    const delivered = error === null
    const retryIn = FIRST_RETRY_MS * 2 ** (number - 1)
    const next = delivered || number >= CALLBACK_MAX_ATTEMPTS ? null : new Date(clock.now() + retryIn).toISOString()
    await control.recordCallbackAttempt(callback.socket_id, {
      subject: callback.subject, subject_identifier: callback.subject_id, url: callback.url, attempt: number,
      delivered, status, error, next_attempt_at: next
    })
    if (next !== null) retry(callback.subject_id, callback.url, retryIn)
  }

  function retry (subjectId: string, url: string, inMs: number) {
    const timer = clock.setTimeout(() => {
      timers.delete(timer)
      const callback = sockets.callbacks(subjectId).find(c => c.url === url)
      if (callback !== undefined && callback.delivered === 0) void deliver(callback)
    }, Math.max(0, inMs))
    timers.add(timer)
  }

  const deliver = (callback: CallbackRow) => attempt(callback).catch(error => log.warn({ err: error, url: callback.url }, 'callback delivery failed'))

  for (const callback of sockets.undeliveredCallbacks()) {
    retry(callback.subject_id, callback.url, Date.parse(callback.next_attempt_at!) - clock.now())
  }

  const unsubscribe = store.subscribe(events => {
    for (const event of events) {
      const subjectId = event.type === 'InstanceStopped' || event.type === 'InstanceStartFailed'
        ? event.data.instance_identifier
        : event.type === 'WaitEnded' ? event.data.wait_identifier : undefined
      if (subjectId === undefined) continue
      for (const callback of sockets.callbacks(subjectId)) {
        if (callback.armed === 1 && callback.delivered === 0 && callback.attempts === '[]') void deliver(callback)
      }
    }
  })

  return () => {
    stopped = true
    unsubscribe()
    for (const timer of timers) timer.cancel()
  }
}
