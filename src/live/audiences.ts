/**
 * Listeners grouped by what they listen to (a network, a zone, a device's stream): the live
 * views find a committed event's audience by its key, and a key goes with its last member.
 */
export class Audiences<T> {
  private readonly byKey = new Map<string, Set<T>>()

  /** Adds a member; the function returned removes it. */
  join (key: string, member: T): () => void {
    const audience = this.byKey.get(key) ?? new Set()
    this.byKey.set(key, audience)
    audience.add(member)
    return () => {
      audience.delete(member)
      if (audience.size === 0 && this.byKey.get(key) === audience) this.byKey.delete(key)
    }
  }

  of (key: string): ReadonlySet<T> | undefined { return this.byKey.get(key) }

  /** How many keys have an audience. */
  get size (): number { return this.byKey.size }

  entries (): IterableIterator<[string, ReadonlySet<T>]> { return this.byKey.entries() }

  * members (): Generator<T> {
    for (const audience of this.byKey.values()) yield * audience
  }

  clear (): void { this.byKey.clear() }
}
