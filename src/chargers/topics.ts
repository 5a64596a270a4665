import { StateOfChargeMessage } from '../../events/chargers.ts'
import type { MqttTopic } from '../docs/mqtt-topics.ts'

/** A charger on MQTT (besides its WebSocket, /chargers/<id>): it reports and is sent nothing. */
export const chargerTopics: readonly MqttTopic[] = [
  {
    kind: 'charger',
    topic: 'chargers/{charger_id}/state-of-charge',
    direction: 'device publishes',
    payload: StateOfChargeMessage,
    description: 'The state of charge in percent: 100 is charged, 80 or more charging80, else charging; a change of status is pushed to the paired widget. At most CHARGER_MAX_RATE readings a second (default 1): the excess is refused and recorded.',
    parameters: { charger_id: { description: 'The charger\'s id, which is also its MQTT username.', example: 'c1234' } },
    qos: 1,
    example: { soc: 81 }
  }
]
