/**
 * Proxy errors: one class, stable codes, and ONE table mapping codes to HTTP status
 * (http-proxy-middleware `status-code.ts` style). Anything not a ProxyError maps to 500 and its
 * message is never shown to the client.
 */

import { SecNeuronError, type ErrorDetails } from "../errors.js";

export const PROXY_ERROR_STATUS = {
  // routing
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  BAD_REQUEST_TARGET: 400,
  METHOD_OVERRIDE: 400,
  UNSUPPORTED_ENCODING: 415,
  // request body
  BODY_TOO_LARGE: 413,
  BODY_NOT_UTF8: 400,
  BODY_NOT_JSON: 400,
  BODY_NOT_OBJECT: 400,
  BODY_DUPLICATE_KEY: 400,
  BODY_FIELD_CASE: 400,
  BODY_FIELD_TYPE: 400,
  BODY_UNEXPECTED: 400,
  MODEL_MISSING: 400,
  MODEL_NOT_STRING: 400,
  MODEL_INVALID: 400,
  MODEL_CONFLICT: 400,
  MODEL_IN_QUERY: 400,
  LOADING_FIELD_DENIED: 403,
  // authorization decisions the caller makes with these helpers
  MODEL_FORBIDDEN: 403,
  ROUTE_FORBIDDEN: 403,
  // authentication
  AUTH_MISSING: 401,
  AUTH_MALFORMED: 401,
  AUTH_CONFLICT: 400,
  AUTH_INVALID: 401,
  AUTH_STALE: 401,
  AUTH_REPLAY: 401,
  // upstream
  UPSTREAM_TOO_LARGE: 502,
  UPSTREAM_MALFORMED: 502,
  UPSTREAM_UNAVAILABLE: 502,
  INTERNAL: 500,
} as const satisfies Record<string, number>;

export type ProxyErrorCode = keyof typeof PROXY_ERROR_STATUS;

/** A request (or upstream response) the proxy refuses, with a stable code. */
export class ProxyError extends SecNeuronError {
  declare readonly code: ProxyErrorCode;
  readonly status: number;
  /** Extra response headers (Allow on 405, WWW-Authenticate on 401). */
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    code: ProxyErrorCode,
    message: string,
    details: ErrorDetails = {},
    headers: Record<string, string> = {},
  ) {
    super(code, message, details);
    this.status = PROXY_ERROR_STATUS[code];
    this.headers = headers;
  }
}

/** HTTP status for any thrown value: the table for ProxyError, 500 for everything else. */
export function statusForError(err: unknown): number {
  if (err instanceof ProxyError) return err.status;
  return 500;
}

/** Message safe to show a client: ProxyError messages only; anything else is generic. */
export function publicMessage(err: unknown): string {
  if (err instanceof ProxyError && err.status < 500) return err.message;
  if (err instanceof ProxyError && err.code !== "INTERNAL") return err.message;
  return "internal error";
}
