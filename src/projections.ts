import { networksProjection, usersProjection } from './accounts/projections.ts'
import { streamAccessProjection } from './audit/stream-access.ts'
import { chargersProjection } from './chargers/projections.ts'
import { deviceProjections } from './devices/projections.ts'
import { hostMetricsProjection } from './hosts/projections.ts'
import { zonesProjection } from './irrigation/projections.ts'
import { deviceKinds, identityKinds } from './kinds.ts'
import type { Projection } from './store/projection.ts'
import { sensorProjections } from './sensors/projections.ts'
import { socketsProjection } from './sockets/projections.ts'

/** Every read model of the service: the live run and `devicelog replay` fold the same list. */
export const allProjections: readonly Projection[] = [
  usersProjection,
  networksProjection,
  streamAccessProjection(identityKinds),
  ...deviceProjections(deviceKinds, identityKinds),
  ...sensorProjections,
  socketsProjection,
  zonesProjection,
  chargersProjection,
  hostMetricsProjection
]
