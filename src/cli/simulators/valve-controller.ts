import type { Clock, Timer } from '../../clock.ts'

export interface ControllerSimulatorOptions {
  /** The service's HTTP base URL, e.g. http://127.0.0.1:3000. */
  url: string
  /** A network member's bearer token; undefined when the root routes are public. */
  token: string | undefined
  /** A zone identifier: its /api/v1 route is used. Undefined: the reference's GET /timer. */
  zone: string | undefined
  minSeconds: number
  maxSeconds: number
  /** Seconds of watering, if not the zone's timer_seconds. */
  durationSeconds: number | undefined
  clock: Clock
  random?: () => number
  onTrigger?: (result: { status: number, body: string }) => void
  onError?: (error: Error) => void
}

/**
 * The reference's external control system, outside the service and only a client of its HTTP
 * API: it asks for a timer run at random intervals, as a soil-moisture controller would.
 */
export function startControllerSimulator (options: ControllerSimulatorOptions): { trigger(): Promise<void>, stop(): void } {
  const random = options.random ?? Math.random
  let timer: Timer | undefined
  let stopped = false

  async function trigger () {
    const query = options.durationSeconds === undefined ? '' : `?duration=${options.durationSeconds}`
    const [method, path] = options.zone === undefined
      ? ['GET', `/timer${query}`]
      : ['POST', `/api/v1/zones/${encodeURIComponent(options.zone)}/timer${query}`]
    const response = await fetch(options.url + path, {
      method, headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }
    })
    options.onTrigger?.({ status: response.status, body: await response.text() })
  }

  function next () {
    if (stopped) return
    const seconds = options.minSeconds + random() * (options.maxSeconds - options.minSeconds)
    timer = options.clock.setTimeout(() => {
      trigger().catch(error => options.onError?.(error as Error)).finally(next)
    }, seconds * 1000)
  }
  next()
  return { trigger, stop () { stopped = true; timer?.cancel() } }
}
