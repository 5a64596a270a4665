import createError from '@fastify/error'

// The catalogue of domain errors: one code, one message, one HTTP status each.
// Routes throw these; the error handler in app.ts turns them into responses.

export const Unauthorized = createError('DL_UNAUTHORIZED', 'missing or invalid bearer token', 401)
export const MetricsNotLocal = createError('DL_METRICS_NOT_LOCAL',
  'metrics are served only to this machine (127.0.0.1, ::1) unless METRICS_TOKEN is set', 403)
export const WrongPassword = createError('DL_WRONG_PASSWORD', 'wrong password', 401)
export const TooManyLoginAttempts = createError('DL_TOO_MANY_LOGIN_ATTEMPTS', 'too many wrong passwords for this user in the last minute: try again later', 429)
export const TooManyRequests = createError<[string]>('DL_TOO_MANY_REQUESTS', 'too many requests to this route from your address: retry in %s', 429)
export const SignupClosed = createError('DL_SIGNUP_CLOSED',
  'sign-up is closed: ask an existing user to create your account (POST /users with their bearer token)', 403)
export const UserNotFound = createError('DL_USER_NOT_FOUND', 'user not found', 404)
export const UsernameTaken = createError('DL_USERNAME_TAKEN', 'username already taken', 409)
export const NetworkNotFound = createError('DL_NETWORK_NOT_FOUND', 'network not found', 404)
export const SensorNotFound = createError('DL_SENSOR_NOT_FOUND', 'sensor not found', 404)
export const SensorNameTaken = createError('DL_SENSOR_NAME_TAKEN', 'a sensor with this name exists in the network', 409)
export const SocketNotFound = createError('DL_SOCKET_NOT_FOUND', 'socket not found', 404)
export const SocketTopicTaken = createError('DL_SOCKET_TOPIC_TAKEN', 'another socket uses this topic', 409)
export const InstanceNotFound = createError('DL_INSTANCE_NOT_FOUND', 'instance not found', 404)
export const EmergencyStopActive = createError('DL_EMERGENCY_STOP_ACTIVE', 'the socket is emergency-stopped: recover it first', 409)
export const PlugAnsweredOtherwise = createError<[string, string]>('DL_PLUG_ANSWERED_OTHERWISE', 'the plug answered %s to %s', 409)
export const PlugDidNotAnswer = createError<[string, number]>('DL_PLUG_DID_NOT_ANSWER', 'the plug did not answer %s within %d ms', 500)
export const PlugDidNotSwitchOff = createError('DL_PLUG_DID_NOT_SWITCH_OFF', 'the plug answered ON to OFF', 500)
export const StreamVersionConflict = createError<[string, string, number]>(
  'DL_STREAM_VERSION_CONFLICT', 'stream %s: expected version %s, found %s', 409)
export const StoreUnavailable = createError<[string]>('DL_STORE_UNAVAILABLE', 'the log cannot record this now: %s', 503)
/** READ_ONLY=true: the service serves a copy for reading; every write and every device connection is refused. */
export const ReadOnlyLog = createError('DL_READ_ONLY',
  'this service serves a read-only copy of the log (READ_ONLY=true): it records nothing and accepts no device connections', 405)
export const InvalidEvent = createError<[string, string]>('DL_INVALID_EVENT', 'event %s does not match its schema: %s', 500)
export const ZoneNotFound = createError('DL_ZONE_NOT_FOUND', 'zone not found', 404)
export const ChargerNotFound = createError('DL_CHARGER_NOT_FOUND', 'charger not found', 404)
export const ChargerIdTaken = createError('DL_CHARGER_ID_TAKEN', 'a device or widget already uses this id', 409)
export const DeviceNotFound = createError('DL_DEVICE_NOT_FOUND', 'device not found', 404)
