/**
 * Error bodies in each API's own shape, so every client library surfaces the message:
 *   ollama    {"error": "..."}
 *   openai    {"error": {"message", "type", "code", "param": null}}
 *   anthropic {"type": "error", "error": {"type", "message"}}
 */

import { ProxyError, publicMessage, statusForError } from "./errors.js";

export type ApiFlavor = "ollama" | "openai" | "anthropic";

export interface ApiErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Which error shape a path gets, for requests that matched no route. */
export function flavorForPath(path: string): ApiFlavor {
  if (path === "/v1/messages" || path.startsWith("/v1/messages/")) return "anthropic";
  if (path === "/v1" || path.startsWith("/v1/")) return "openai";
  return "ollama";
}

function openAiType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "api_error";
  return "invalid_request_error";
}

function anthropicType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 413) return "request_too_large";
  if (status === 429) return "rate_limit_error";
  if (status === 529) return "overloaded_error";
  if (status >= 500) return "api_error";
  return "invalid_request_error";
}

/**
 * An error response in the API's shape. `route` is a flavor, or anything with a `flavor`
 * (a RouteMatch / RouteSpec). `code` is the stable error code (OpenAI `code` field).
 */
export function apiError(
  route: ApiFlavor | { flavor: ApiFlavor },
  status: number,
  message: string,
  code: string | null = null,
  headers: Record<string, string> = {},
): ApiErrorResponse {
  const flavor = typeof route === "string" ? route : route.flavor;
  const h = { "content-type": "application/json; charset=utf-8", ...headers };
  if (flavor === "openai") {
    return {
      status,
      headers: h,
      body: { error: { message, type: openAiType(status), param: null, code } },
    };
  }
  if (flavor === "anthropic") {
    return { status, headers: h, body: { type: "error", error: { type: anthropicType(status), message } } };
  }
  return { status, headers: h, body: { error: message } };
}

/** apiError for any thrown value: ProxyError keeps its status/message/code, others are 500. */
export function apiErrorFrom(route: ApiFlavor | { flavor: ApiFlavor }, err: unknown): ApiErrorResponse {
  const status = statusForError(err);
  const code = err instanceof ProxyError ? err.code.toLowerCase() : "internal";
  const headers = err instanceof ProxyError ? { ...err.headers } : {};
  return apiError(route, status, publicMessage(err), code, headers);
}
