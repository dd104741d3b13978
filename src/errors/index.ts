// Errors: one typed hierarchy and the PostgREST-shaped wire format.
export {
  type Challenge,
  ERRORS,
  type ErrorCode,
  type ErrorKind,
  type ErrorSpec,
  renderErrorTable,
} from './codes.js'
export { GatewayError, isGatewayError } from './gateway-error.js'
export { type ErrorResponse, errorBody, errorResponse, sendError } from './wire-format.js'
