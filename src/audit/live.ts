import type { WebSocket } from 'ws'
import { sendBounded } from '../live/websocket.ts'
import type { EventStore } from '../store/event-store.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import type { auditQueries } from './stream-access.ts'

/** At most this many events per query: the replay of `after`, and each step of a catch-up. */
export const AUDIT_PAGE = 1000

/** An event as the audit feed shows it (GET /api/v1/events and its WebSocket), in the schema's key order. */
export function auditView (event: RecordedEvent) {
  return {
    position: event.position,
    stream_id: event.stream_id,
    stream_version: event.stream_version,
    type: event.type,
    schema_version: event.schema_version,
    recorded_at: event.recorded_at,
    // The scrypt hash is the user's secret even if it cannot be reversed cheaply.
    data: event.type === 'UserRegistered' ? { ...event.data, password_hash: '[redacted]' } : event.data as unknown,
    metadata: event.metadata as unknown,
    hash: event.hash
  }
}

export interface AuditLiveFilter { after?: number, stream?: string, type?: string }

interface Client {
  socket: WebSocket
  userId: string
  stream?: string
  type?: string
  /** The last position sent (or the `after` asked for): the next query starts past it. */
  after: number
  /** The next page of a catch-up longer than one page, queued for the next turn of the event loop. */
  more?: NodeJS.Immediate
}

/**
 * `/api/v1/events/ws`: the audit feed, live. On each commit, every client runs the feed's own
 * query (same visibility, same filters) from the last position it was sent, so it gets each
 * newly visible event once, in position order, and none is missed between commits; `after`
 * first replays what the client has not seen. Nothing listens to the log while nobody is connected.
 */
export function createAuditLive (store: EventStore, audit: ReturnType<typeof auditQueries>) {
  const clients = new Set<Client>()
  let unsubscribe: (() => void) | undefined

  function push (client: Client): void {
    if (client.more !== undefined) return // its queued page reads on from where it is
    const { userId, stream, type } = client
    const events = audit.eventsFor(userId, {
      after: client.after, limit: AUDIT_PAGE, order: 'asc', ...(stream === undefined ? {} : { stream }), ...(type === undefined ? {} : { type })
    })
    for (const event of events) {
      // false: the socket is closing, or was dropped for falling behind (its close handler cleans up).
      if (!sendBounded(client.socket, JSON.stringify({ type: 'event', data: auditView(event) }))) return
      client.after = event.position
    }
    // A full page: there may be more, read a page per turn so one client cannot hold the loop.
    if (events.length === AUDIT_PAGE) client.more = setImmediate(() => { client.more = undefined; push(client) })
  }

  const onCommit = () => { for (const client of clients) push(client) }

  function leave (client: Client): void {
    if (!clients.delete(client)) return
    if (client.more !== undefined) clearImmediate(client.more)
    client.more = undefined
    if (clients.size === 0) { unsubscribe?.(); unsubscribe = undefined }
  }

  return {
    /** The socket gets, from now on, each event its user may see that passes the filter; with `after`, what it missed first. */
    join (socket: WebSocket, userId: string, filter: AuditLiveFilter): void {
      const client: Client = { socket, userId, after: filter.after ?? store.headPosition }
      if (filter.stream !== undefined) client.stream = filter.stream
      if (filter.type !== undefined) client.type = filter.type
      clients.add(client)
      unsubscribe ??= store.subscribe(onCommit)
      socket.on('close', () => leave(client))
      if (filter.after !== undefined) push(client)
    },
    close (): void {
      for (const client of [...clients]) {
        leave(client)
        client.socket.close(1001, 'service stopping')
      }
    }
  }
}
