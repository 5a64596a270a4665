import createError from '@fastify/error'

// The catalogue of domain errors: one code, one message, one HTTP status each.
// Routes throw these; the error handler in app.ts turns them into responses.

export const Unauthorized = createError('DL_UNAUTHORIZED', 'missing or invalid bearer token', 401)
export const WrongPassword = createError('DL_WRONG_PASSWORD', 'wrong password', 401)
export const UserNotFound = createError('DL_USER_NOT_FOUND', 'user not found', 404)
export const UsernameTaken = createError('DL_USERNAME_TAKEN', 'username already taken', 409)
export const NetworkNotFound = createError('DL_NETWORK_NOT_FOUND', 'network not found', 404)
export const SensorNotFound = createError('DL_SENSOR_NOT_FOUND', 'sensor not found', 404)
export const SensorNameTaken = createError('DL_SENSOR_NAME_TAKEN', 'a sensor with this name exists in the network', 409)
export const StreamVersionConflict = createError<[string, string, number]>(
  'DL_STREAM_VERSION_CONFLICT', 'stream %s: expected version %s, found %s', 409)
export const InvalidEvent = createError<[string, string]>('DL_INVALID_EVENT', 'event %s does not match its schema: %s', 500)
