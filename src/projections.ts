import { networksProjection, usersProjection } from './accounts/projections.ts'
import { streamAccessProjection } from './audit/stream-access.ts'
import { chargersProjection } from './chargers/index.ts'
import { deviceProjections } from './devices/projections.ts'
import { hostMetricsProjection } from './hosts/index.ts'
import { zonesProjection } from './irrigation/index.ts'
import { deviceKinds, identityKinds } from './kinds.ts'
import type { Projection } from './store/projection.ts'
import { sensorProjections } from './sensors/index.ts'
import { socketsProjection } from './sockets/index.ts'

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
