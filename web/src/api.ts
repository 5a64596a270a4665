// The console speaks only the public HTTP and WebSocket APIs, with the user's bearer token,
// kept for the browser session (sessionStorage: closed with the tab).

const TOKEN_KEY = 'devicelog.token'

export const session = {
  get token (): string | null { return sessionStorage.getItem(TOKEN_KEY) },
  set (token: string) { sessionStorage.setItem(TOKEN_KEY, token) },
  clear () { sessionStorage.removeItem(TOKEN_KEY) }
}

export class ApiError extends Error {
  constructor (readonly status: number, message: string) { super(message) }
}

/** A JSON request; errors carry the API's own message (`detail` or `message`). */
export async function api<T = any> (method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {}
  if (session.token !== null) headers.authorization = `Bearer ${session.token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.text()
  const json = text === '' ? undefined : (response.headers.get('content-type')?.includes('json') === true ? JSON.parse(text) : text)
  if (!response.ok) {
    if (response.status === 401 && session.token !== null && path !== '/authentication') {
      session.clear()
      location.hash = '#/login'
    }
    throw new ApiError(response.status, json?.detail ?? json?.message ?? `${response.status} ${response.statusText}`)
  }
  return json as T
}

/** ws(s)://<this host><path>, with the token as `?access_token=` (browsers cannot set headers). */
export function wsUrl (path: string, params: Record<string, string> = {}): string {
  const url = new URL(path, location.href)
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
  if (session.token !== null) url.searchParams.set('access_token', session.token)
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value)
  return url.toString()
}

export const when = (iso: string | null | undefined) => iso === null || iso === undefined ? '—' : new Date(iso).toLocaleString()
