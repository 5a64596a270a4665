import type { EventOf, EventType } from '../../events/index.ts'

/** What a registration event says about the MQTT identity it concerns. */
export type RegistrationChange =
  | { change: 'registered', id: string, username: string, name: string, network: string, passwordSha256: string }
  /** The same identity, renamed or moved to another network. */
  | { change: 'moved', id: string, username: string, name: string, network: string }
  | { change: 'removed', id: string, username: string }

/** For each event type that registers, moves or removes an identity: what it means. */
export type RegistrationEvents = { [T in EventType]?: (data: EventOf<T>['data']) => RegistrationChange }

/**
 * A kind of MQTT identity, declared by its capability in `src/<capability>/kind.ts` and listed
 * once in src/kinds.ts: its name, and how its registration events map to an identity. The
 * shared parts derive from the list: credentials, the device registry, stream access, the
 * kind enum of the API and the console.
 */
export interface DeviceKindDeclaration<K extends string = string> {
  readonly kind: K
  readonly registration: RegistrationEvents
}

/** Declares a kind (keeps its name's literal type, so the list can derive the kind enum). */
export const declareDeviceKind = <K extends string>(declaration: DeviceKindDeclaration<K>): DeviceKindDeclaration<K> => declaration

/** The registration event types of these kinds. */
export const registrationTypes = (kinds: readonly DeviceKindDeclaration[]): EventType[] =>
  kinds.flatMap(kind => Object.keys(kind.registration) as EventType[])

/** What an event means for the identity it registers, moves or removes, and its kind; undefined for any other event. */
export function registrationReader (kinds: readonly DeviceKindDeclaration[]) {
  const byType = new Map<string, { kind: DeviceKindDeclaration, read: (data: any) => RegistrationChange }>()
  for (const kind of kinds) {
    for (const [type, read] of Object.entries(kind.registration)) {
      if (byType.has(type)) throw new Error(`${type} registers two kinds of device`)
      byType.set(type, { kind, read: read as (data: any) => RegistrationChange })
    }
  }
  return (event: { type: string, data: unknown }): (RegistrationChange & { kind: DeviceKindDeclaration }) | undefined => {
    const entry = byType.get(event.type)
    return entry === undefined ? undefined : { ...entry.read(event.data), kind: entry.kind }
  }
}
