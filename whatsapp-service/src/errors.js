/** Errors the HTTP contract knows, each with its status (README.md, "The HTTP contract"). */
export const STATUS_BY_CODE = Object.freeze({
  invalid_request: 400,
  unauthorized: 401,
  not_found: 404,
  // WhatsApp refuses to start new chats from this account for a while (error 463).
  reachout_limited: 403,
  not_on_whatsapp: 404,
  not_ready: 409,
  send_failed: 502,
  shutting_down: 503,
});

export class ServiceError extends Error {
  constructor(code, message) {
    super(message);
    if (!(code in STATUS_BY_CODE)) throw new TypeError(`unknown error code ${code}`);
    this.name = 'ServiceError';
    this.code = code;
    this.statusCode = STATUS_BY_CODE[code];
  }
}

export function errorBody(code, message) {
  return { error: { code, message } };
}
