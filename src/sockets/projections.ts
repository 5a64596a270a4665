import type { EnergyReading } from '../../events/sockets.ts'
import type { Db } from '../store/database.ts'
import type { Projection } from '../store/projection.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { evolveSocket, initialSocketState, type SocketEvent, type SocketState } from './decider.ts'

/**
 * The socket registry with each socket's decider state and what the plug says of itself,
 * every instance, the plug's power periods, waits, and callback deliveries.
 */
export const socketsProjection: Projection = {
  name: 'sockets',
  // 2: each socket's state holds its desired power (rebuilt from the log).
  version: 2,
  handles: ['SocketRegistered', 'SocketCommanded', 'PowerReported', 'PowerCommandUnanswered', 'PowerResent', 'EnergyReported',
    'SocketStatusReported', 'SocketInfoReported', 'SocketAvailabilityReported', 'InstanceStarted', 'InstanceStartFailed',
    'InstanceStopped', 'InstanceDeleted', 'EmergencyStopped', 'EmergencyRecovered', 'WaitStarted', 'WaitEnded', 'CallbackAttempted'],
  tables: ['sockets', 'socket_instances', 'socket_power_periods', 'socket_waits', 'socket_callbacks'],
  ddl: `
    CREATE TABLE IF NOT EXISTS sockets (
      socket_id TEXT PRIMARY KEY, network_id TEXT NOT NULL, socket_name TEXT NOT NULL, topic TEXT NOT NULL UNIQUE,
      full_topic TEXT NOT NULL, registered_at TEXT NOT NULL, state TEXT NOT NULL, device_name TEXT,
      info TEXT NOT NULL DEFAULT '{}', mac TEXT UNIQUE, initial_energy TEXT, last_energy TEXT, reported_online INTEGER
    ) STRICT;
    CREATE TABLE IF NOT EXISTS socket_instances (
      instance_id TEXT PRIMARY KEY, socket_id TEXT NOT NULL, position INTEGER NOT NULL, status TEXT NOT NULL,
      started_at TEXT NOT NULL, timeout_ms REAL, duration_seconds REAL, stop_due_at TEXT,
      stopped_at TEXT, stop_reason TEXT, failure TEXT, power_on_at TEXT, power_off_at TEXT,
      energy_start TEXT, energy_end TEXT, deleted INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX IF NOT EXISTS socket_instances_by_socket ON socket_instances (socket_id, position);
    CREATE TABLE IF NOT EXISTS socket_power_periods (
      position INTEGER PRIMARY KEY, socket_id TEXT NOT NULL, on_instance TEXT NOT NULL, on_at TEXT NOT NULL,
      off_instance TEXT, off_at TEXT
    ) STRICT;
    CREATE INDEX IF NOT EXISTS socket_power_periods_by_socket ON socket_power_periods (socket_id, position);
    CREATE TABLE IF NOT EXISTS socket_waits (
      wait_id TEXT PRIMARY KEY, socket_id TEXT NOT NULL, due_at TEXT NOT NULL, ended INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE IF NOT EXISTS socket_callbacks (
      subject_id TEXT NOT NULL, url TEXT NOT NULL, socket_id TEXT NOT NULL, subject TEXT NOT NULL,
      armed INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0, attempts TEXT NOT NULL DEFAULT '[]',
      next_attempt_at TEXT,
      PRIMARY KEY (subject_id, url)
    ) STRICT, WITHOUT ROWID;`,
  prepare (db) {
    const selectState = db.prepare('SELECT state FROM sockets WHERE socket_id = ?').pluck()
    const insertSocket = db.prepare(`INSERT INTO sockets (socket_id, network_id, socket_name, topic, full_topic, registered_at, state)
      VALUES (?, ?, ?, ?, ?, ?, ?)`)
    const updateState = db.prepare('UPDATE sockets SET state = ? WHERE socket_id = ?')
    const updateEnergy = db.prepare('UPDATE sockets SET last_energy = @energy, initial_energy = coalesce(initial_energy, @energy) WHERE socket_id = @socket')
    const updateDeviceName = db.prepare('UPDATE sockets SET device_name = ? WHERE socket_id = ?')
    const mergeInfo = db.prepare('UPDATE sockets SET info = json_patch(info, ?) WHERE socket_id = ?')
    const bindMac = db.prepare('UPDATE sockets SET mac = ? WHERE socket_id = ? AND mac IS NULL')
    const updateReportedOnline = db.prepare('UPDATE sockets SET reported_online = ? WHERE socket_id = ?')
    const insertInstance = db.prepare(`INSERT INTO socket_instances
      (instance_id, socket_id, position, status, started_at, timeout_ms, duration_seconds, stop_due_at)
      VALUES (?, ?, ?, 'running', ?, ?, ?, ?)`)
    const failInstance = db.prepare(`UPDATE socket_instances SET status = 'failed', failure = ?, stopped_at = ? WHERE instance_id = ?`)
    const stopInstance = db.prepare(`UPDATE socket_instances SET status = 'stopped', stopped_at = ?, stop_reason = ? WHERE instance_id = ?`)
    const deleteInstance = db.prepare('UPDATE socket_instances SET deleted = 1 WHERE instance_id = ?')
    const poweredOn = db.prepare('UPDATE socket_instances SET power_on_at = ? WHERE instance_id = ?')
    const poweredOff = db.prepare('UPDATE socket_instances SET power_off_at = ? WHERE instance_id = ?')
    const startEnergy = db.prepare(`UPDATE socket_instances SET energy_start = ? WHERE socket_id = ? AND status = 'running' AND energy_start IS NULL`)
    const endEnergy = db.prepare(`UPDATE socket_instances SET energy_end = ? WHERE socket_id = ? AND status = 'stopped' AND energy_end IS NULL`)
    const openPeriod = db.prepare('SELECT position FROM socket_power_periods WHERE socket_id = ? AND off_at IS NULL').pluck()
    const insertPeriod = db.prepare('INSERT INTO socket_power_periods (position, socket_id, on_instance, on_at) VALUES (?, ?, ?, ?)')
    const closePeriod = db.prepare('UPDATE socket_power_periods SET off_instance = ?, off_at = ? WHERE position = ?')
    const insertWait = db.prepare('INSERT INTO socket_waits (wait_id, socket_id, due_at) VALUES (?, ?, ?)')
    const endWait = db.prepare('UPDATE socket_waits SET ended = 1 WHERE wait_id = ?')
    const insertCallback = db.prepare('INSERT OR IGNORE INTO socket_callbacks (subject_id, url, socket_id, subject) VALUES (?, ?, ?, ?)')
    const armCallbacks = db.prepare('UPDATE socket_callbacks SET armed = 1, next_attempt_at = ? WHERE subject_id = ? AND armed = 0')
    const recordAttempt = db.prepare(`UPDATE socket_callbacks SET delivered = ?, next_attempt_at = ?,
      attempts = json_insert(attempts, '$[#]', json(?)) WHERE subject_id = ? AND url = ?`)

    const evolve = (event: SocketEvent & RecordedEvent): void => {
      const stored = selectState.get(event.data.socket_identifier) as string | undefined
      const state = stored === undefined ? initialSocketState() : JSON.parse(stored) as SocketState
      updateState.run(JSON.stringify(evolveSocket(state, event)), event.data.socket_identifier)
    }

    return (recorded: RecordedEvent) => {
      const event = recorded as SocketEvent & RecordedEvent
      const socketId = event.data.socket_identifier
      const at = event.recorded_at
      switch (event.type) {
        case 'SocketRegistered': {
          const { network_identifier, socket_name, topic, full_topic } = event.data
          insertSocket.run(socketId, network_identifier, socket_name, topic, full_topic, at,
            JSON.stringify(evolveSocket(initialSocketState(), event)))
          return
        }
        case 'PowerReported': {
          evolve(event)
          const { power, outcome, instance_identifier: instance } = event.data
          // Whatever the outcome, a report tells the plug's state: periods open and close on it.
          const label = instance ?? (outcome === 'pressed' ? '<manual>' : '<service>')
          const open = openPeriod.get(socketId) as number | undefined
          if (power === 'ON' && open === undefined) insertPeriod.run(event.position, socketId, label, at)
          if (power === 'OFF' && open !== undefined) closePeriod.run(label, at, open)
          if (outcome === 'confirmed' && instance !== null) (power === 'ON' ? poweredOn : poweredOff).run(at, instance)
          return
        }
        case 'EnergyReported': {
          const energy = JSON.stringify(event.data.energy)
          updateEnergy.run({ energy, socket: socketId })
          startEnergy.run(energy, socketId)
          endEnergy.run(energy, socketId)
          return
        }
        case 'SocketStatusReported':
          updateDeviceName.run(event.data.device_name, socketId)
          return
        case 'SocketInfoReported': {
          const { socket_identifier: _, source: __, ...info } = event.data
          mergeInfo.run(JSON.stringify(info), socketId)
          if (info.mac !== undefined) bindMac.run(info.mac, socketId)
          return
        }
        case 'SocketAvailabilityReported':
          updateReportedOnline.run(event.data.online ? 1 : 0, socketId)
          return
        case 'InstanceStarted': {
          evolve(event)
          const { instance_identifier: id, started_at, timeout_ms, duration_seconds, stop_due_at, callbacks } = event.data
          insertInstance.run(id, socketId, event.position, started_at, timeout_ms, duration_seconds, stop_due_at)
          for (const url of callbacks) insertCallback.run(id, url, socketId, 'instance')
          return
        }
        case 'InstanceStartFailed':
          evolve(event)
          failInstance.run(event.data.reason, at, event.data.instance_identifier)
          armCallbacks.run(at, event.data.instance_identifier)
          return
        case 'InstanceStopped':
          evolve(event)
          stopInstance.run(event.data.stopped_at, event.data.reason, event.data.instance_identifier)
          armCallbacks.run(at, event.data.instance_identifier)
          return
        case 'InstanceDeleted':
          deleteInstance.run(event.data.instance_identifier)
          return
        case 'WaitStarted':
          insertWait.run(event.data.wait_identifier, socketId, event.data.due_at)
          for (const url of event.data.callbacks) insertCallback.run(event.data.wait_identifier, url, socketId, 'wait')
          return
        case 'WaitEnded':
          endWait.run(event.data.wait_identifier)
          armCallbacks.run(at, event.data.wait_identifier)
          return
        case 'CallbackAttempted': {
          const { subject_identifier, url, attempt, delivered, status, error, next_attempt_at } = event.data
          recordAttempt.run(delivered ? 1 : 0, next_attempt_at, JSON.stringify({ attempt, at, status, error }), subject_identifier, url)
          return
        }
        case 'SocketCommanded':
        case 'PowerCommandUnanswered':
        case 'PowerResent':
        case 'EmergencyStopped':
        case 'EmergencyRecovered':
          evolve(event)
      }
    }
  }
}

export interface SocketRow {
  socket_id: string
  network_id: string
  socket_name: string
  topic: string
  full_topic: string
  registered_at: string
  state: string
  device_name: string | null
  info: string
  mac: string | null
  initial_energy: string | null
  last_energy: string | null
  reported_online: number | null
}

export interface InstanceRow {
  instance_id: string
  socket_id: string
  status: 'running' | 'stopped' | 'failed'
  started_at: string
  timeout_ms: number | null
  duration_seconds: number | null
  stop_due_at: string | null
  stopped_at: string | null
  stop_reason: string | null
  failure: string | null
  power_on_at: string | null
  power_off_at: string | null
  energy_start: string | null
  energy_end: string | null
}

export interface CallbackRow {
  subject_id: string
  url: string
  socket_id: string
  subject: 'instance' | 'wait'
  armed: number
  delivered: number
  attempts: string
  next_attempt_at: string | null
}

export interface PowerPeriodRow { on_instance: string, on_at: string, off_instance: string | null, off_at: string | null }

export function socketQueries (db: Db) {
  const byId = db.prepare('SELECT * FROM sockets WHERE socket_id = ?')
  const byTopic = db.prepare('SELECT * FROM sockets WHERE topic = ?')
  const byMac = db.prepare('SELECT socket_id FROM sockets WHERE mac = ?').pluck()
  const first = db.prepare('SELECT * FROM sockets ORDER BY registered_at, rowid LIMIT 1')
  const ofUser = db.prepare(`SELECT s.* FROM sockets s JOIN network_members m ON m.network_id = s.network_id
    WHERE m.user_id = ? ORDER BY s.registered_at, s.socket_name`)
  const all = db.prepare('SELECT * FROM sockets')
  const instance = db.prepare('SELECT * FROM socket_instances WHERE instance_id = ? AND socket_id = ? AND deleted = 0')
  const instances = db.prepare('SELECT * FROM socket_instances WHERE socket_id = ? AND deleted = 0 ORDER BY position')
  const running = db.prepare(`SELECT * FROM socket_instances WHERE status = 'running' AND deleted = 0 ORDER BY position`)
  const periods = db.prepare('SELECT on_instance, on_at, off_instance, off_at FROM socket_power_periods WHERE socket_id = ? ORDER BY position')
  const callbacks = db.prepare('SELECT * FROM socket_callbacks WHERE subject_id = ? ORDER BY url')
  const undelivered = db.prepare('SELECT * FROM socket_callbacks WHERE armed = 1 AND delivered = 0 AND next_attempt_at IS NOT NULL')
  const pendingWaits = db.prepare('SELECT wait_id, socket_id, due_at FROM socket_waits WHERE ended = 0')
  const waitPending = db.prepare('SELECT 1 FROM socket_waits WHERE wait_id = ? AND ended = 0').pluck()
  return {
    socket: (socketId: string) => byId.get(socketId) as SocketRow | undefined,
    byTopic: (topic: string) => byTopic.get(topic) as SocketRow | undefined,
    /** The socket that reported this MAC as its own, if any. */
    macOwner: (mac: string) => byMac.get(mac) as string | undefined,
    first: () => first.get() as SocketRow | undefined,
    all: () => all.all() as SocketRow[],
    socketsOf: (userId: string) => ofUser.all(userId) as SocketRow[],
    state: (row: SocketRow) => JSON.parse(row.state) as SocketState,
    instance: (socketId: string, instanceId: string) => instance.get(instanceId, socketId) as InstanceRow | undefined,
    instances: (socketId: string) => instances.all(socketId) as InstanceRow[],
    runningInstances: () => running.all() as InstanceRow[],
    powerPeriods: (socketId: string) => periods.all(socketId) as PowerPeriodRow[],
    callbacks: (subjectId: string) => callbacks.all(subjectId) as CallbackRow[],
    undeliveredCallbacks: () => undelivered.all() as CallbackRow[],
    pendingWaits: () => pendingWaits.all() as Array<{ wait_id: string, socket_id: string, due_at: string }>,
    waitPending: (waitId: string) => waitPending.get(waitId) !== undefined
  }
}
export type SocketQueries = ReturnType<typeof socketQueries>

export const energyOf = (json: string | null): EnergyReading | null => json === null ? null : JSON.parse(json) as EnergyReading
