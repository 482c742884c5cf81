/**
 * The one catalogue of errors. Each code is stable; the HTTP status belongs to the code and is
 * applied only at the edge (http/errors.ts). Codes are Zulip's where the API is Zulip's.
 */
export const errorCatalogue = {
  BAD_REQUEST: 400,
  REQUEST_VARIABLE_MISSING: 400,
  INVALID_JSON: 400,
  STREAM_DOES_NOT_EXIST: 400,
  UNAUTHORIZED_PRINCIPAL: 400,
  BAD_EVENT_QUEUE_ID: 400,
  UNAUTHORIZED: 401,
  INVALID_API_KEY: 401,
  AUTHENTICATION_FAILED: 401,
  USER_DEACTIVATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMIT_HIT: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL_SERVER_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof errorCatalogue;

/**
 * An error a client can act on: a stable `code`, a message naming the field and the limit, and
 * optional extra keys Zulip defines for that error (`stream`, `stream_id`, `queue_id`, …).
 */
export class ConcordError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
    /** Seconds, for RATE_LIMIT_HIT and SERVICE_UNAVAILABLE. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ConcordError';
  }

  get status(): number {
    return errorCatalogue[this.code];
  }
}

/** Shorthands for the errors commands raise most. */
export const fail = {
  badRequest: (msg: string, extra?: Record<string, unknown>) => new ConcordError('BAD_REQUEST', msg, extra),
  missing: (name: string) => new ConcordError('REQUEST_VARIABLE_MISSING', `Missing '${name}' argument`),
  invalid: (name: string, why: string) => new ConcordError('BAD_REQUEST', `Invalid ${name}: ${why}`),
  forbidden: (msg = 'Insufficient permission') => new ConcordError('BAD_REQUEST', msg),
  /** Zulip's "No such user", followed by which parameter named whom. */
  noSuchUser: (which?: string) =>
    new ConcordError('BAD_REQUEST', which ? `No such user: ${which}` : 'No such user'),
  noSuchStreamId: (id: number) =>
    new ConcordError('STREAM_DOES_NOT_EXIST', `Channel with ID '${id}' does not exist`, { stream_id: id }),
  noSuchStreamName: (name: string) =>
    new ConcordError('STREAM_DOES_NOT_EXIST', `Channel '${name}' does not exist`, { stream: name }),
};
