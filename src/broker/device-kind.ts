import type { z } from 'zod'
import type { DomainEvent, devices } from '../../events/index.ts'
import type { Transaction } from '../store/event-store.ts'

type RejectionReason = devices.RejectionReason

/** An authenticated MQTT client: which device it is. Set at CONNECT, read by every other hook. */
export interface ConnectedDevice {
  /** The MQTT client id and username it connected with. */
  clientId: string
  username: string
  kind: string
  id: string
  streamId: string
  networkId: string
}

export type Refusal = { reason: RejectionReason, detail: string }

/**
 * What a device's message means: events to decide inside the unit of work, or a refusal.
 * `stateless`: the events do not depend on the stream's state (a measurement is recorded
 * whatever came before), so any number of them may share a group; the others are decided on
 * the committed state and run again if a unit before them in the group changed it.
 * Kinds write `decide` as a method, not an arrow: tsx compiles with esbuild's keepNames, which
 * names every arrow made per message with a defineProperty (1.1 µs a message in a profile).
 */
export type Interpretation =
  | { refused: false, streamId: string, decide: (tx: Transaction) => DomainEvent[], stateless?: boolean }
  | ({ refused: true } & Refusal)

/** What the broker asks of each kind of device (sensors, sockets, ...). */
export interface DeviceKind {
  readonly kind: string
  interpretPublish(device: ConnectedDevice, topic: string, payload: Buffer): Interpretation
  /** null allows the subscription. */
  refuseSubscription(device: ConnectedDevice, topic: string): Refusal | null
  /** After a SUBACK: the topics the device was granted (a plug that subscribed can be asked). */
  subscribed?(device: ConnectedDevice, topics: string[]): void
  /** Whether a message on this topic may be sent to this client (Aedes' authorizeForward); absent: every message it subscribed to. */
  forward?(device: ConnectedDevice, topic: string): boolean
  /** Topics only this kind's clients may publish on: any other kind's message there is refused. */
  reserves?(topic: string): boolean
}

/** Thrown by a decider when a well-formed message breaks a rule: recorded as a rejection. */
export class DeviceMessageRefused extends Error {
  constructor (readonly reason: RejectionReason, readonly detail: string) { super(detail) }
}

export const refuse = (reason: RejectionReason, detail: string): Interpretation => ({ refused: true, reason, detail })

/** What a schema's first issues say, for a rejection's detail. */
export const describeIssues = (error: z.ZodError): string =>
  error.issues.slice(0, 3).map(issue => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ')

/**
 * A payload read as JSON and checked against its schema: the message, or the refusal that says
 * why not (invalid_json, invalid_payload). `detail` replaces zod's words where the contract is short.
 */
export function readPayload<S extends z.ZodType> (payload: Buffer, schema: S, detail?: string):
  { ok: true, message: z.infer<S> } | ({ ok: false, refused: true } & Refusal) {
  let json: unknown
  try {
    json = JSON.parse(payload.toString('utf8'))
  } catch (error) {
    return { ok: false, refused: true, reason: 'invalid_json', detail: (error as Error).message }
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) return { ok: false, refused: true, reason: 'invalid_payload', detail: detail ?? describeIssues(parsed.error) }
  return { ok: true, message: parsed.data }
}
