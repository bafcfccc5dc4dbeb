/**
 * Keep-alive settings for the sidecar's own HTTP hops (caller -> sidecar -> host front -> engine).
 *
 * A pooled connection that the server closes for idleness at the moment the client reuses it
 * gives the client ECONNRESET, which the proxy can only answer with 502 (a POST cannot be
 * replayed). So a client's idle sockets must expire before the server's do: Node servers close
 * idle connections after 5 s by default, and Node's agent only honours the server's
 * `Keep-Alive: timeout=` hint when the agent has a timeout of its own. Agents here drop idle
 * sockets after 4 s; servers here keep idle connections for 65 s (longer than common clients').
 */
import { Agent } from "node:http";

/** Idle time after which a pooled client socket is closed. */
export const CLIENT_IDLE_MS = 4_000;
/** Idle time the sidecar's own servers keep a connection open. */
export const SERVER_KEEP_ALIVE_MS = 65_000;

export function keepAliveAgent(maxSockets = 256): Agent {
  // `timeout` on an agent destroys only free sockets; an active request keeps its own timeout.
  return new Agent({ keepAlive: true, maxSockets, timeout: CLIENT_IDLE_MS });
}

/** Apply the keep-alive window to a server (headersTimeout must exceed it, per Node's docs). */
export function serverKeepAlive(server: { keepAliveTimeout: number; headersTimeout: number }): void {
  server.keepAliveTimeout = SERVER_KEEP_ALIVE_MS;
  server.headersTimeout = SERVER_KEEP_ALIVE_MS + 1_000;
}
