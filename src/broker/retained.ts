import { Readable } from 'node:stream'
import MemoryPersistence, { Packet } from 'aedes-persistence/asyncPersistence.js'

type AedesPacket = Packet

/**
 * Retained messages the service owns (a sensor's configuration, a zone's valve command): read
 * from a projection of the log when a device subscribes, so they survive a restart without
 * being published again, and cost one keyed read each.
 */
export interface OwnedRetained {
  /** The topics, with `+` where the device's id goes: `configurations/+`, `zones/+/valve`. */
  readonly topics: string
  readonly qos: 0 | 1
  /** The retained payload on the topic of one id; undefined when there is none. */
  one(id: string): string | undefined
  /** Every id's retained payload, for a wildcard subscription that spans them. */
  all(): Iterable<readonly [id: string, payload: string]>
}

/** What an owned template makes of a subscription: nothing, one id's topic, or every id's. */
type TemplateMatch = { kind: 'none' } | { kind: 'one', id: string } | { kind: 'all' }
const NONE: TemplateMatch = { kind: 'none' }

/** Matches a subscription's levels against a template's (one `+` for the id). */
export function matchTemplate (filter: readonly string[], template: readonly string[]): TemplateMatch {
  let id: string | undefined
  for (let i = 0; i < template.length; i++) {
    const level = filter[i]
    if (level === undefined) return NONE
    if (level === '#') return id === undefined ? { kind: 'all' } : { kind: 'one', id }
    const expected = template[i]
    if (expected === '+') {
      if (level !== '+') id = level
    } else if (level !== '+' && level !== expected) {
      return NONE
    }
  }
  // `a/b/#` also matches `a/b` [MQTT-4.7.1-2].
  const rest = filter.length - template.length
  if (rest > 1 || (rest === 1 && filter[template.length] !== '#')) return NONE
  return id === undefined ? { kind: 'all' } : { kind: 'one', id }
}

/** One topic level of the retained messages devices published; a packet where a topic ends. */
class Level {
  readonly children = new Map<string, Level>()
  packet: AedesPacket | undefined
}

/**
 * Retained messages that devices publish (a plug's LWT, a controller's state), as a tree of
 * topic levels: an exact subscription is one walk down, a wildcard one visits only the
 * branches it can match, never every retained message.
 */
export class RetainedTree {
  private readonly root = new Level()

  store (packet: AedesPacket): void {
    const levels = packet.topic.split('/')
    if ((packet.payload as Buffer).length > 0) {
      let node = this.root
      for (const level of levels) {
        let child = node.children.get(level)
        if (child === undefined) node.children.set(level, child = new Level())
        node = child
      }
      node.packet = packet
      return
    }
    // An empty retained payload clears the topic [MQTT-3.3.1-10]; empty branches go with it.
    const path: Level[] = [this.root]
    for (const level of levels) {
      const child = path.at(-1)!.children.get(level)
      if (child === undefined) return
      path.push(child)
    }
    path.at(-1)!.packet = undefined
    for (let i = levels.length; i > 0; i--) {
      const node = path[i]!
      if (node.packet !== undefined || node.children.size > 0) break
      path[i - 1]!.children.delete(levels[i - 1]!)
    }
  }

  * match (filter: readonly string[]): Generator<AedesPacket> {
    yield * this.visit(this.root, filter, 0)
  }

  private * visit (node: Level, filter: readonly string[], depth: number): Generator<AedesPacket> {
    if (depth === filter.length) {
      if (node.packet !== undefined) yield node.packet
      return
    }
    const level = filter[depth]!
    // Wildcards at the first level match no topic that starts with `$` [MQTT-4.7.2-1].
    const visible = (name: string) => depth > 0 || !name.startsWith('$')
    if (level === '#') {
      // `a/#` matches `a` itself too.
      if (node.packet !== undefined && depth > 0) yield node.packet
      for (const [name, child] of node.children) if (visible(name)) yield * this.everything(child)
    } else if (level === '+') {
      for (const [name, child] of node.children) if (visible(name)) yield * this.visit(child, filter, depth + 1)
    } else {
      const child = node.children.get(level)
      if (child !== undefined) yield * this.visit(child, filter, depth + 1)
    }
  }

  private * everything (node: Level): Generator<AedesPacket> {
    if (node.packet !== undefined) yield node.packet
    for (const child of node.children.values()) yield * this.everything(child)
  }
}

/**
 * Aedes's in-memory persistence (sessions, subscriptions, in-flight packets) with retained
 * messages that scale: the owned ones come from the log's projections, the rest from a tree.
 */
export class DevicePersistence extends MemoryPersistence {
  private readonly tree = new RetainedTree()
  private readonly owned: Array<{ template: string[], source: OwnedRetained }> = []

  own (source: OwnedRetained): void {
    const template = source.topics.split('/')
    if (template.filter(level => level === '+').length !== 1 || template.includes('#') || source.topics.startsWith('$')) {
      throw new Error(`an owned retained topic has one + for the id and no #: ${source.topics}`)
    }
    this.owned.push({ template, source })
  }

  private ownerOf (topic: string): boolean {
    const levels = topic.split('/')
    return this.owned.some(({ template }) => template.length === levels.length && matchTemplate(levels, template).kind === 'one')
  }

  /** Clients that ever had a packet queued for them: only they can have one waiting at CONNECT. */
  private readonly queuedFor = new Set<string>()

  override async outgoingEnqueue (sub: { clientId: string }, packet: AedesPacket): Promise<void> {
    this.queuedFor.add(sub.clientId)
    return await super.outgoingEnqueue(sub, packet)
  }

  override async outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: AedesPacket): Promise<void> {
    for (const sub of subs) this.queuedFor.add(sub.clientId)
    return await super.outgoingEnqueueCombi(subs, packet)
  }

  outgoingEmpty (client: { id: string }): boolean { return !this.queuedFor.has(client.id) }

  override async storeRetained (packet: AedesPacket): Promise<void> {
    // The projection already holds what the service published on its own topics.
    if (this.ownerOf(packet.topic)) return
    this.tree.store(new Packet(packet))
  }

  override createRetainedStream (pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  override createRetainedStreamCombi (patterns: string[]): Readable {
    return Readable.from(this.retained(patterns))
  }

  private * retained (patterns: string[]): Generator<AedesPacket> {
    for (const pattern of patterns) {
      const filter = pattern.split('/')
      yield * this.tree.match(filter)
      for (const { template, source } of this.owned) {
        const match = matchTemplate(filter, template)
        if (match.kind === 'none') continue
        const topicOf = (id: string) => template.map(level => level === '+' ? id : level).join('/')
        const packet = (id: string, payload: string) =>
          new Packet({ cmd: 'publish', topic: topicOf(id), payload: Buffer.from(payload), qos: source.qos, retain: true, dup: false })
        if (match.kind === 'one') {
          const payload = source.one(match.id)
          if (payload !== undefined) yield packet(match.id, payload)
        } else {
          for (const [id, payload] of source.all()) yield packet(id, payload)
        }
      }
    }
  }
}
