import type { LiveChannel } from '../devices/live-channels.ts'
import { chargingStatusOf } from './decider.ts'

/** A charger's live channel on `/api/v1/devices/<id>/ws`. */
export const chargerChannels: LiveChannel[] = [
  {
    name: 'charging',
    types: ['StateOfChargeReported'],
    view: e => e.type === 'StateOfChargeReported' ? { soc: e.data.soc, status: chargingStatusOf(e.data.soc) } : undefined
  }
]
