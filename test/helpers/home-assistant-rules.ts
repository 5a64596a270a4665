// Home Assistant's MQTT discovery rules for the platforms devicelog publishes (sensor, switch,
// valve), encoded from home-assistant/core so that every config the service publishes can be
// checked without a Home Assistant. Each rule names the file it comes from. Where Home Assistant
// drops a key silently (its platforms' DISCOVERY_SCHEMA use vol.REMOVE_EXTRA), this validator
// reports it: a key that does nothing is a mistake in what we publish.

type Json = Record<string, unknown>

const MQTT = 'homeassistant/components/mqtt'

/** A rule that failed: what, where in the payload, and the source that says so. */
export interface Violation { path: string, message: string, source: string }

/**
 * discovery.py TOPIC_MATCHER: `<component>/[<node_id>/]<object_id>/config` under the prefix,
 * node and object ids in [a-zA-Z0-9_-]; `device` is the component of device-based discovery.
 */
const TOPIC_MATCHER = /^(?<component>\w+)\/(?:(?<node>[a-zA-Z0-9_-]+)\/)?(?<object>[a-zA-Z0-9_-]+)\/config$/

/** abbreviations.py: the abbreviated keys Home Assistant expands (a subset). Full names are asked of us, so none may appear. */
const ABBREVIATIONS = new Set(['~', 'avty', 'avty_mode', 'avty_t', 'avty_tpl', 'cmd_t', 'cmd_tpl', 'cmps', 'dev', 'dev_cla', 'def_ent_id', 'ids', 'mf', 'mdl',
  'o', 'obj_id', 'ops', 'p', 'pl_avail', 'pl_not_avail', 'pl_on', 'pl_off', 'pl_open', 'pl_cls', 'pl_stop', 'ret', 'stat_cla', 'stat_t',
  'stat_on', 'stat_off', 'sw', 'sn', 'uniq_id', 'unit_of_meas', 'url', 'val_tpl'])

/** const.py SUPPORTED_COMPONENTS (the platforms device-based discovery may name; a subset). */
const SUPPORTED_COMPONENTS = new Set(['binary_sensor', 'button', 'climate', 'cover', 'event', 'fan', 'light', 'lock', 'number', 'select', 'sensor', 'switch', 'text', 'valve'])

/** schemas.py DEVICE_DISCOVERY_SCHEMA: the keys of a device config's body (vol.Schema: anything else is an error). */
const DEVICE_DISCOVERY_KEYS = new Set(['availability', 'availability_mode', 'availability_template', 'availability_topic', 'payload_available',
  'payload_not_available', 'device', 'components', 'origin', 'state_topic', 'command_topic', 'qos', 'encoding'])
/** schemas.py MQTT_ENTITY_DEVICE_INFO_SCHEMA */
const DEVICE_INFO_KEYS = new Set(['identifiers', 'connections', 'manufacturer', 'model', 'model_id', 'name', 'hw_version', 'serial_number', 'sw_version',
  'via_device', 'suggested_area', 'configuration_url'])
/** schemas.py MQTT_ORIGIN_INFO_SCHEMA */
const ORIGIN_KEYS = new Set(['name', 'sw_version', 'support_url'])
/** const.py AVAILABILITY_MODES */
const AVAILABILITY_MODES = new Set(['all', 'any', 'latest'])
/** schemas.py SHARED_OPTIONS: device-level options a component inherits. */
const SHARED_OPTIONS = ['availability', 'availability_mode', 'availability_template', 'availability_topic', 'command_topic', 'payload_available', 'payload_not_available', 'state_topic']

/** schemas.py MQTT_ENTITY_COMMON_SCHEMA with config.py MQTT_BASE_SCHEMA: what every component may set. */
const COMMON_KEYS = ['platform', 'unique_id', 'name', 'default_entity_id', 'device', 'origin', 'icon', 'entity_category', 'entity_picture', 'enabled_by_default',
  'json_attributes_topic', 'json_attributes_template', 'encoding', 'qos', ...SHARED_OPTIONS]

/** sensor.py _PLATFORM_SCHEMA_BASE (on config.py MQTT_RO_SCHEMA: state_topic, value_template). */
const SENSOR_KEYS = new Set([...COMMON_KEYS, 'value_template', 'device_class', 'expire_after', 'force_update', 'last_reset_value_template', 'options',
  'suggested_display_precision', 'state_class', 'unit_of_measurement'])
/** switch.py PLATFORM_SCHEMA_MODERN (on config.py MQTT_RW_SCHEMA: command_topic required, retain). */
const SWITCH_KEYS = new Set([...COMMON_KEYS, 'value_template', 'command_template', 'retain', 'optimistic', 'payload_on', 'payload_off', 'state_on', 'state_off', 'device_class'])
/** valve.py _PLATFORM_SCHEMA_BASE */
const VALVE_KEYS = new Set([...COMMON_KEYS, 'command_template', 'device_class', 'optimistic', 'payload_close', 'payload_open', 'payload_stop', 'position_closed',
  'position_open', 'reports_position', 'retain', 'state_closed', 'state_closing', 'state_open', 'state_opening', 'value_template'])

/** switch/__init__.py SwitchDeviceClass; valve/__init__.py ValveDeviceClass. */
const SWITCH_DEVICE_CLASSES = new Set(['outlet', 'switch'])
const VALVE_DEVICE_CLASSES = new Set(['water', 'gas'])

/** sensor/const.py SensorStateClass */
const STATE_CLASSES = new Set(['measurement', 'measurement_angle', 'total', 'total_increasing'])

/**
 * sensor/const.py DEVICE_CLASS_UNITS and DEVICE_CLASS_STATE_CLASSES, for the device classes
 * a sensor may be given here (units: the members of HA's unit enums we could use). `null`: no unit.
 */
const ALL_STATE_CLASSES = ['measurement', 'total', 'total_increasing']
const SENSOR_DEVICE_CLASSES: Record<string, { units: Array<string | null>, stateClasses: string[] }> = {
  battery: { units: ['%'], stateClasses: ['measurement'] },
  carbon_dioxide: { units: ['ppm'], stateClasses: ['measurement'] },
  current: { units: ['A', 'mA'], stateClasses: ['measurement'] },
  data_size: { units: ['bit', 'kbit', 'Mbit', 'Gbit', 'B', 'kB', 'MB', 'GB', 'TB', 'KiB', 'MiB', 'GiB', 'TiB'], stateClasses: ALL_STATE_CLASSES },
  energy: { units: ['Wh', 'kWh', 'MWh', 'GWh', 'J', 'kJ', 'MJ', 'GJ'], stateClasses: ['total', 'total_increasing'] },
  enum: { units: [null], stateClasses: [] },
  humidity: { units: ['%'], stateClasses: ['measurement'] },
  illuminance: { units: ['lx'], stateClasses: ['measurement'] },
  moisture: { units: ['%'], stateClasses: ['measurement'] },
  pm25: { units: ['μg/m³'], stateClasses: ['measurement'] },
  power: { units: ['mW', 'W', 'kW', 'MW', 'GW', 'TW'], stateClasses: ['measurement'] },
  pressure: { units: ['Pa', 'hPa', 'kPa', 'bar', 'cbar', 'mbar', 'mmHg', 'inHg', 'psi'], stateClasses: ['measurement'] },
  temperature: { units: ['°C', '°F', 'K'], stateClasses: ['measurement'] },
  voltage: { units: ['V', 'mV', 'µV', 'kV', 'MV'], stateClasses: ['measurement'] }
}
/** sensor/__init__.py: these device classes hold no number (an enum's option, a date). */
const NON_NUMERIC_DEVICE_CLASSES = new Set(['date', 'enum', 'timestamp'])

/** core.py VALID_ENTITY_ID: `<domain>.<object id>`, lower case letters, digits, `_`, no `_` at either end of either part. */
const OBJECT_ID = '(?!_)[\\da-z_]+(?<!_)'
const VALID_ENTITY_ID = new RegExp(`^(?!.+__)${OBJECT_ID}\\.${OBJECT_ID}$`)

/** util.py valid_subscribe_topic: a non-empty topic, `#` only last and alone in its level, `+` alone in its level. */
function validSubscribeTopic (topic: unknown): boolean {
  if (typeof topic !== 'string' || topic.length === 0 || topic.includes('\u0000')) return false
  const levels = topic.split('/')
  return levels.every((level, i) => (level.includes('#') ? level === '#' && i === levels.length - 1 : true) && (level.includes('+') ? level === '+' : true))
}
/** util.py valid_publish_topic: a subscribe topic without wildcards. */
const validPublishTopic = (topic: unknown): boolean => validSubscribeTopic(topic) && !(topic as string).includes('+') && !(topic as string).includes('#')

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const isString = (value: unknown): value is string => typeof value === 'string'

/**
 * Every rule a device-based discovery config must pass, for the platforms we publish. Returns the
 * violations (empty when Home Assistant would take it as it is).
 */
export function checkDeviceDiscovery (prefix: string, topic: string, payload: string): Violation[] {
  const violations: Violation[] = []
  const fail = (path: string, message: string, source: string) => violations.push({ path, message, source })

  const trimmed = topic.startsWith(`${prefix}/`) ? topic.slice(prefix.length + 1) : undefined
  const match = trimmed === undefined ? null : TOPIC_MATCHER.exec(trimmed)
  if (match === null) fail('topic', `${topic} is not <prefix>/<component>/[<node_id>/]<object_id>/config with ids in [a-zA-Z0-9_-]`, `${MQTT}/discovery.py`)
  else if (match.groups!.component !== 'device') fail('topic', `${topic} is not device-based discovery (component "device")`, `${MQTT}/discovery.py`)

  let config: unknown
  try {
    config = JSON.parse(payload)
  } catch {
    fail('payload', 'not JSON', `${MQTT}/discovery.py`)
    return violations
  }
  // discovery.py: json_loads_object
  if (!isObject(config)) return [...violations, { path: 'payload', message: 'not a JSON object', source: `${MQTT}/discovery.py` }]

  const checkFullNames = (object: Json, path: string) => {
    for (const key of Object.keys(object)) if (ABBREVIATIONS.has(key)) fail(`${path}.${key}`, 'an abbreviated key: full key names are required', `${MQTT}/abbreviations.py`)
  }
  checkFullNames(config, '$')

  for (const key of Object.keys(config)) {
    if (!DEVICE_DISCOVERY_KEYS.has(key)) fail(`$.${key}`, 'not a key of a device discovery payload', `${MQTT}/schemas.py`)
  }
  // schemas.py DEVICE_DISCOVERY_SCHEMA: device, components and origin are required.
  const device = config.device
  if (!isObject(device)) {
    fail('$.device', 'required: the device', `${MQTT}/schemas.py`)
  } else {
    checkFullNames(device, '$.device')
    for (const key of Object.keys(device)) if (!DEVICE_INFO_KEYS.has(key)) fail(`$.device.${key}`, 'not a device info key', `${MQTT}/schemas.py`)
    const identifiers = device.identifiers
    const connections = device.connections
    const hasIdentifiers = (Array.isArray(identifiers) ? identifiers.length > 0 : isString(identifiers)) || (Array.isArray(connections) && connections.length > 0)
    if (!hasIdentifiers) fail('$.device', "at least one identifying value in 'identifiers' and/or 'connections'", `${MQTT}/schemas.py`)
    if (Array.isArray(identifiers) && !identifiers.every(isString)) fail('$.device.identifiers', 'strings', `${MQTT}/schemas.py`)
    for (const key of ['manufacturer', 'model', 'name', 'serial_number', 'sw_version', 'hw_version']) {
      if (key in device && !isString(device[key])) fail(`$.device.${key}`, 'a string', `${MQTT}/schemas.py`)
    }
  }
  const origin = config.origin
  if (!isObject(origin)) {
    fail('$.origin', 'required: the origin', `${MQTT}/schemas.py`)
  } else {
    for (const key of Object.keys(origin)) if (!ORIGIN_KEYS.has(key)) fail(`$.origin.${key}`, 'not an origin key', `${MQTT}/schemas.py`)
    if (!isString(origin.name)) fail('$.origin.name', 'required, a string', `${MQTT}/schemas.py`)
  }
  if ('availability_topic' in config && 'availability' in config) fail('$.availability', 'availability and availability_topic are exclusive', `${MQTT}/schemas.py`)
  if ('availability_mode' in config && !AVAILABILITY_MODES.has(config.availability_mode as string)) fail('$.availability_mode', 'all, any or latest', `${MQTT}/const.py`)
  if ('availability' in config) {
    const list = Array.isArray(config.availability) ? config.availability : [config.availability]
    list.forEach((entry, i) => {
      if (!isObject(entry)) return fail(`$.availability[${i}]`, 'an object', `${MQTT}/schemas.py`)
      checkFullNames(entry, `$.availability[${i}]`)
      if (!validSubscribeTopic(entry.topic)) fail(`$.availability[${i}].topic`, 'required, a valid subscribe topic', `${MQTT}/schemas.py`)
      for (const key of Object.keys(entry)) {
        if (!['topic', 'payload_available', 'payload_not_available', 'value_template'].includes(key)) fail(`$.availability[${i}].${key}`, 'not an availability key', `${MQTT}/schemas.py`)
      }
    })
  }
  if ('qos' in config && ![0, 1, 2].includes(config.qos as number)) fail('$.qos', '0, 1 or 2', `${MQTT}/util.py`)

  const components = config.components
  if (!isObject(components) || Object.keys(components).length === 0) {
    fail('$.components', 'required: at least one component', `${MQTT}/schemas.py`)
    return violations
  }
  for (const [id, component] of Object.entries(components)) {
    const path = `$.components.${id}`
    if (!isObject(component)) { fail(path, 'an object', `${MQTT}/schemas.py`); continue }
    checkFullNames(component, path)
    // schemas.py COMPONENT_CONFIG_SCHEMA: platform, one of the supported components.
    const platform = component.platform
    if (!isString(platform) || !SUPPORTED_COMPONENTS.has(platform)) { fail(`${path}.platform`, 'required, a supported component', `${MQTT}/schemas.py`); continue }
    // discovery.py _merge_common_device_options: what the component does not set, it inherits.
    const merged: Json = { ...component }
    for (const option of SHARED_OPTIONS) if (option in config && !(option in merged)) merged[option] = config[option]
    checkComponent(platform, merged, path, fail)
  }
  return violations
}

function checkComponent (platform: string, config: Json, path: string, fail: (path: string, message: string, source: string) => void) {
  // Device-based discovery needs a unique_id per component (entity.py; the entity registry keys on it).
  if (!isString(config.unique_id) || config.unique_id === '') fail(`${path}.unique_id`, 'required with device-based discovery', `${MQTT}/entity.py`)
  if ('object_id' in config) fail(`${path}.object_id`, 'deprecated (stops working in 2026.4): use default_entity_id', `${MQTT}/entity.py`)
  if ('default_entity_id' in config) {
    const entityId = config.default_entity_id
    if (!isString(entityId) || !VALID_ENTITY_ID.test(entityId)) fail(`${path}.default_entity_id`, `${String(entityId)} is not a valid entity id`, 'homeassistant/core.py')
    else if (entityId.split('.')[0] !== platform) fail(`${path}.default_entity_id`, `${entityId} is not in the ${platform} domain`, `${MQTT}/schemas.py`)
  }
  if (config.name !== undefined && config.name !== null && !isString(config.name)) fail(`${path}.name`, 'a string or null', `${MQTT}/schemas.py`)
  if ('state_topic' in config && !validSubscribeTopic(config.state_topic)) fail(`${path}.state_topic`, 'a valid subscribe topic', `${MQTT}/util.py`)
  if ('command_topic' in config && !validPublishTopic(config.command_topic)) fail(`${path}.command_topic`, 'a valid publish topic', `${MQTT}/util.py`)
  if ('value_template' in config && !isString(config.value_template)) fail(`${path}.value_template`, 'a template', `${MQTT}/config.py`)

  const allowed = platform === 'sensor' ? SENSOR_KEYS : platform === 'switch' ? SWITCH_KEYS : platform === 'valve' ? VALVE_KEYS : undefined
  const file = `${MQTT}/${platform}.py`
  if (allowed === undefined) return fail(`${path}.platform`, `${platform}: no rules encoded here for this platform`, file)
  for (const key of Object.keys(config)) if (!allowed.has(key)) fail(`${path}.${key}`, `dropped by ${platform}'s DISCOVERY_SCHEMA (REMOVE_EXTRA)`, file)

  if (platform === 'sensor') {
    // config.py MQTT_RO_SCHEMA: a sensor reads a state topic.
    if (!('state_topic' in config)) fail(`${path}.state_topic`, 'required', `${MQTT}/config.py`)
    const deviceClass = config.device_class as string | null | undefined
    const unit = config.unit_of_measurement as string | null | undefined
    const stateClass = config.state_class as string | null | undefined
    // sensor.py validate_sensor_state_and_device_class_config
    if ('options' in config) {
      const options = config.options
      if (!Array.isArray(options) || options.length === 0) fail(`${path}.options`, 'An empty options list is not allowed', file)
      if (stateClass != null || unit != null) fail(`${path}.options`, 'not allowed together with state_class or unit_of_measurement', file)
      if (deviceClass !== 'enum') fail(`${path}.options`, 'must be used together with device class enum', file)
    }
    if ('last_reset_value_template' in config && stateClass !== 'total') fail(`${path}.last_reset_value_template`, 'only with state class total', file)
    if (stateClass != null && !STATE_CLASSES.has(stateClass)) fail(`${path}.state_class`, `${stateClass} is not a state class`, 'homeassistant/components/sensor/const.py')
    if (deviceClass != null) {
      const rules = SENSOR_DEVICE_CLASSES[deviceClass]
      if (rules === undefined) {
        fail(`${path}.device_class`, `${deviceClass}: not a sensor device class encoded here`, 'homeassistant/components/sensor/const.py')
      } else {
        // sensor/const.py DEVICE_CLASS_UNITS, DEVICE_CLASS_STATE_CLASSES
        if (!rules.units.includes(unit ?? null)) fail(`${path}.unit_of_measurement`, `${String(unit)} is not a unit of device class ${deviceClass}`, 'homeassistant/components/sensor/const.py')
        if (stateClass != null && !rules.stateClasses.includes(stateClass)) fail(`${path}.state_class`, `${stateClass} is impossible for device class ${deviceClass}`, 'homeassistant/components/sensor/const.py')
        if (deviceClass === 'enum' && !Array.isArray(config.options)) fail(`${path}.options`, 'an enum sensor lists its options', 'homeassistant/components/sensor/__init__.py')
      }
    }
  } else if (platform === 'switch') {
    // config.py MQTT_RW_SCHEMA: command_topic is required.
    if (!('command_topic' in config)) fail(`${path}.command_topic`, 'required', `${MQTT}/config.py`)
    if (config.device_class != null && !SWITCH_DEVICE_CLASSES.has(config.device_class as string)) fail(`${path}.device_class`, 'outlet or switch', 'homeassistant/components/switch/__init__.py')
    for (const key of ['payload_on', 'payload_off', 'state_on', 'state_off']) if (key in config && !isString(config[key])) fail(`${path}.${key}`, 'a string', file)
  } else {
    if (config.device_class != null && !VALVE_DEVICE_CLASSES.has(config.device_class as string)) fail(`${path}.device_class`, 'water or gas', 'homeassistant/components/valve/__init__.py')
    // valve.py _validate_and_add_defaults
    if (config.reports_position === true && ['payload_open', 'payload_close', 'state_open', 'state_closed'].some(key => key in config)) {
      fail(path, 'payload_open, payload_close, state_open and state_closed are not allowed if the valve reports a position', file)
    }
    if ('reports_position' in config && typeof config.reports_position !== 'boolean') fail(`${path}.reports_position`, 'a boolean', file)
  }
}

/**
 * Renders the one template form devicelog uses, `{{ value_json['<key>'] }}`, as Home Assistant
 * would (models.py MqttValueTemplate: the payload parsed as JSON; a missing key renders empty,
 * None renders `None`, which every platform reads as unknown: const.py PAYLOAD_NONE).
 */
export function renderValueTemplate (template: string, payload: string): string {
  const match = /^\{\{ value_json\['([a-z0-9_]+)'\] \}\}$/.exec(template)
  if (match === null) throw new Error(`a template this validator does not render: ${template}`)
  const value = (JSON.parse(payload) as Json)[match[1]!]
  if (value === undefined) return ''
  if (value === null) return 'None'
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** What a state payload means to a component, by its platform's rules: violations when Home Assistant would ignore or reject it. */
export function checkState (platform: string, component: Json, payload: string, path: string): Violation[] {
  const violations: Violation[] = []
  const rendered = isString(component.value_template) ? renderValueTemplate(component.value_template, payload) : payload
  const fail = (message: string, source: string) => violations.push({ path, message, source })
  if (platform === 'sensor') {
    const deviceClass = component.device_class as string | undefined
    const numeric = (deviceClass !== undefined && !NON_NUMERIC_DEVICE_CLASSES.has(deviceClass)) || component.state_class != null || component.unit_of_measurement != null
    // sensor.py _update_state: an empty state is ignored; None is unknown.
    if (rendered === '') fail('an empty state is ignored', `${MQTT}/sensor.py`)
    else if (rendered !== 'None' && numeric && !Number.isFinite(Number(rendered))) fail(`${rendered} is not numeric (sensor/__init__.py raises for a numeric sensor)`, 'homeassistant/components/sensor/__init__.py')
    else if (rendered !== 'None' && Array.isArray(component.options) && !component.options.includes(rendered)) fail(`${rendered} is not one of the options`, `${MQTT}/sensor.py`)
  } else if (platform === 'switch') {
    const on = (component.state_on as string | undefined) ?? (component.payload_on as string | undefined) ?? 'ON'
    const off = (component.state_off as string | undefined) ?? (component.payload_off as string | undefined) ?? 'OFF'
    if (![on, off, 'None'].includes(rendered)) fail(`${rendered} is neither ${on} nor ${off}`, `${MQTT}/switch.py`)
  } else if (platform === 'valve') {
    const states = [component.state_open ?? 'open', component.state_closed ?? 'closed', component.state_opening ?? 'opening', component.state_closing ?? 'closing', 'None']
    if (!states.includes(rendered)) fail(`${rendered} is not one of [open, closed, opening, closing]`, `${MQTT}/valve.py`)
  }
  return violations
}
