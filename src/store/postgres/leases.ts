import type pg from 'pg'
import type { Clock, Timer } from '../../clock.ts'
import { Connection } from './connection.ts'
import { openPostgresSchema } from './schema.ts'

/**
 * Leases in PostgreSQL: which node owns what (a zone's timers, the charger callbacks, the node
 * itself), so that with several nodes exactly one runs each timer. A lease is a row (name,
 * owner, expiry); a node takes a free or expired one, keeps the ones it holds by renewing them
 * every third of their term, and loses one it failed to renew in time: another node then takes
 * it and runs what fell due meanwhile. Firing "once" rests on the log, not on the lease: what a
 * timer does is an append expecting its stream's version, so a node that lost its lease while
 * firing is refused by the one that took it over.
 *
 * Time comes from the injected clock (the nodes' clocks, kept by NTP; tests move them), so that a
 * lease's expiry and the timers it guards read the same time.
 */
export interface LeaseOptions {
  url: string
  /** This node's name: unique among the nodes (host and process id, say). */
  owner: string
  clock: Clock
  /** How long a lease lasts unless renewed. */
  termMs: number
  /** Told when a lease this node held was found taken by another (its renewal came too late). */
  onLost?: (name: string) => void
}

export class Leases {
  /** The leases this node holds, with the expiry of each as last set. */
  private readonly held = new Map<string, number>()
  private renewal: Timer | undefined
  private renewing: Promise<void> = Promise.resolve()
  private closed = false
  /** The connection's queries, one after another (a renewal and an acquire may be asked at once). */
  private queries: Promise<unknown> = Promise.resolve()

  private constructor (private readonly connection: Connection, private readonly options: LeaseOptions) {}

  private query<R extends pg.QueryResultRow> (text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    const result = this.queries.then(() => this.connection.query<R>(text, values))
    this.queries = result.catch(() => {})
    return result
  }

  static async open (options: LeaseOptions): Promise<Leases> {
    const connection = new Connection(options.url)
    await openPostgresSchema(await connection.session())
    const leases = new Leases(connection, options)
    leases.scheduleRenewal()
    return leases
  }

  /** Takes the lease if it is free, expired or already this node's; true if this node holds it now. */
  async acquire (name: string): Promise<boolean> {
    const now = this.options.clock.now()
    const { rows } = await this.query<{ owner: string }>(`INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3)
      ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
        WHERE leases.owner = EXCLUDED.owner OR leases.expires_at <= $4
      RETURNING owner`, [name, this.options.owner, now + this.options.termMs, now])
    const mine = rows.length === 1
    if (mine) this.held.set(name, now + this.options.termMs)
    else this.held.delete(name)
    return mine
  }

  /**
   * Whether this node holds the lease: taken or renewed, and not past the expiry it set. A node
   * that cannot reach the database stops acting when its leases run out, as the others may take
   * them from then on.
   */
  holds (name: string): boolean { return (this.held.get(name) ?? 0) > this.options.clock.now() }

  /** Settles once the renewal in flight (the timer's) is done. */
  whenRenewed (): Promise<void> { return this.renewing }

  /** Who holds the lease now (an expired one is held by nobody). */
  async ownerOf (name: string): Promise<string | undefined> {
    const { rows } = await this.query<{ owner: string }>('SELECT owner FROM leases WHERE name = $1 AND expires_at > $2', [name, this.options.clock.now()])
    return rows[0]?.owner
  }

  /** Whether a node other than this one holds an unexpired lease whose name starts with `prefix`. */
  async othersHold (prefix: string): Promise<boolean> {
    const { rows } = await this.query(`SELECT 1 FROM leases WHERE starts_with(name, $1) AND owner <> $2 AND expires_at > $3 LIMIT 1`,
      [prefix, this.options.owner, this.options.clock.now()])
    return rows.length > 0
  }

  /** Gives a lease up at once, for another node to take. */
  async release (name: string): Promise<void> {
    this.held.delete(name)
    await this.query('DELETE FROM leases WHERE name = $1 AND owner = $2', [name, this.options.owner])
  }

  /** Renews every lease this node holds; a lease taken by another meanwhile is lost (onLost). */
  async renew (): Promise<void> {
    if (this.held.size === 0) return
    const expiresAt = this.options.clock.now() + this.options.termMs
    const names = [...this.held.keys()]
    const { rows } = await this.query<{ name: string }>(`UPDATE leases SET expires_at = $1
      WHERE name = ANY($2) AND owner = $3 RETURNING name`, [expiresAt, names, this.options.owner])
    const renewed = new Set(rows.map(row => row.name))
    for (const name of names) {
      if (renewed.has(name)) {
        this.held.set(name, expiresAt)
        continue
      }
      this.held.delete(name)
      this.options.onLost?.(name)
    }
  }

  /** Stops renewing; the leases stay until they expire (as when the node dies), unless released first. */
  async close (): Promise<void> {
    this.closed = true
    this.renewal?.cancel()
    await this.renewing
    await this.queries
    await this.connection.end()
  }

  private scheduleRenewal (): void {
    if (this.closed) return
    this.renewal = this.options.clock.setTimeout(() => {
      // A failed renewal is retried at the next turn; meanwhile `holds` runs out on its own.
      this.renewing = this.renew().catch(() => {}).finally(() => this.scheduleRenewal())
    }, Math.max(1, Math.floor(this.options.termMs / 3)))
  }
}
