import { useEffect, useRef, useState } from 'preact/hooks'
import { api, wsUrl } from './api.ts'

// Live views ride on the APIs' WebSockets. A lost connection is shown ("reconnecting") and is
// opened again by itself, with a growing pause (0.5 s, 1 s, 2 s ... at most 10 s).
// A browser does not tell why an upgrade was refused: a socket that closes before it ever opened
// has the token checked with a cheap HTTP call, whose 401 (revoked or expired) logs out as every
// other 401 does (api() clears the session and shows the login form).

/** Does the token still work? On 401 api() itself logs out; anything else (down, offline): keep trying. */
const checkToken = () => api('GET', '/networks').then(() => undefined, () => undefined)

const down = new Set<object>()
const watchers = new Set<(reconnecting: boolean) => void>()
function setDown (key: object, isDown: boolean) {
  const before = down.size > 0
  if (isDown) down.add(key)
  else down.delete(key)
  if (before !== down.size > 0) for (const watch of watchers) watch(down.size > 0)
}

/** True while any live connection of the page is lost. */
export function useReconnecting (): boolean {
  const [reconnecting, setReconnecting] = useState(down.size > 0)
  useEffect(() => { watchers.add(setReconnecting); return () => { watchers.delete(setReconnecting) } }, [])
  return reconnecting
}

export interface LiveHandlers {
  onMessage(message: any): void
  /** On every (re)connect: subscribe, and refresh what may have been missed. */
  onOpen?(send: (message: unknown) => void): void
}

/** A WebSocket to `path` for as long as the component lives; null path: none. */
export function useLive (path: string | null, handlers: LiveHandlers, params: Record<string, string> = {}) {
  const latest = useRef(handlers)
  latest.current = handlers
  const key = path === null ? null : path + JSON.stringify(params)
  useEffect(() => {
    if (path === null) return
    const identity = {}
    let socket: WebSocket | undefined
    let stopped = false
    let pause = 500
    let timer: ReturnType<typeof setTimeout> | undefined
    const open = () => {
      socket = new WebSocket(wsUrl(path, params))
      const ws = socket
      let opened = false
      ws.onopen = () => {
        opened = true
        pause = 500
        setDown(identity, false)
        latest.current.onOpen?.(message => ws.send(JSON.stringify(message)))
      }
      ws.onmessage = event => latest.current.onMessage(JSON.parse(String(event.data)))
      ws.onclose = () => {
        if (stopped) return
        setDown(identity, true)
        if (!opened) void checkToken()
        timer = setTimeout(open, pause)
        pause = Math.min(pause * 2, 10_000)
      }
    }
    open()
    return () => {
      stopped = true
      clearTimeout(timer)
      setDown(identity, false)
      socket?.close()
    }
  }, [key])
}
