import type pg from 'pg'

/**
 * One PostgreSQL session that comes back: a node outlives PostgreSQL's restart or a dropped
 * connection. The session is opened when first needed and again after it failed, so a query
 * made while PostgreSQL is away fails (and what depends on it says so: a 503, a lease that runs
 * out) without taking the process down, and the next one after it is back succeeds. `setUp` runs
 * on each new session (a LISTEN).
 */
export class Connection {
  private client: pg.Client | undefined
  private connecting: Promise<pg.Client> | undefined
  private closed = false

  constructor (
    private readonly url: string,
    private readonly options: { setUp?: (client: pg.Client) => Promise<void>, onLost?: (error: Error) => void } = {}
  ) {}

  /** The open session, opened now if there is none. */
  session (): Promise<pg.Client> {
    if (this.client !== undefined) return Promise.resolve(this.client)
    if (this.closed) return Promise.reject(new Error('the PostgreSQL connection is closed'))
    this.connecting ??= this.open().finally(() => { this.connecting = undefined })
    return this.connecting
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow> (text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return (await this.session()).query<R>(text, values)
  }

  async end (): Promise<void> {
    this.closed = true
    const client = this.client ?? await this.connecting?.catch(() => undefined)
    this.client = undefined
    await client?.end().catch(() => {})
  }

  private async open (): Promise<pg.Client> {
    // Imported here: a node without DATABASE_URL never loads the client.
    const { default: pg } = await import('pg')
    const client = new pg.Client({ connectionString: this.url })
    // A session that fails while idle emits 'error': without a listener it would end the process.
    const lost = (error?: Error) => {
      if (this.client !== client) return
      this.client = undefined
      this.options.onLost?.(error ?? new Error('the PostgreSQL connection ended'))
    }
    client.on('error', lost)
    client.on('end', () => lost())
    try {
      await client.connect()
      await this.options.setUp?.(client)
    } catch (error) {
      client.removeAllListeners('end')
      await client.end().catch(() => {})
      throw error
    }
    if (this.closed) {
      await client.end().catch(() => {})
      throw new Error('the PostgreSQL connection is closed')
    }
    this.client = client
    return client
  }
}
