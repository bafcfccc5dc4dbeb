import { createServer, request, type Agent, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { CLIENT_IDLE_MS, keepAliveAgent, serverKeepAlive, SERVER_KEEP_ALIVE_MS } from "../../plugin/edges/keep-alive.js";

// The race behind a 502 seen in bench:proxy: the host closed an idle pooled connection just as
// the proxy reused it. Pooled sockets must expire on the client side first.
const get = (agent: Agent, port: number) =>
  new Promise<number>((resolve, reject) => {
    request({ host: "127.0.0.1", port, path: "/", agent }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode ?? 0)); }).on("error", reject).end();
  });
const freeCount = (agent: Agent) => Object.values(agent.freeSockets).reduce((n, l) => n + (l?.length ?? 0), 0);

describe("keep-alive hops", () => {
  let server: Server | undefined;
  let agent: Agent | undefined;
  afterEach(async () => {
    agent?.destroy();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
  });

  it("drops an idle pooled socket before the server's announced keep-alive timeout", async () => {
    let closedByServer = 0;
    server = createServer((_q, s) => s.end("ok"));
    server.keepAliveTimeout = 2_000; // announces Keep-Alive: timeout=2
    server.on("connection", (sock) => sock.on("end", () => closedByServer++));
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    agent = keepAliveAgent();
    expect(await get(agent, port)).toBe(200);
    expect(freeCount(agent)).toBe(1);
    // The agent honours the hint (2 s less its 1 s buffer) only because it has a timeout itself.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(freeCount(agent)).toBe(0);
    expect(closedByServer).toBe(1); // the client's FIN, not the server's timer
    expect(await get(agent, port)).toBe(200);
  });

  it("servers keep idle connections far longer than client pools", () => {
    const s = createServer();
    serverKeepAlive(s);
    expect(s.keepAliveTimeout).toBe(SERVER_KEEP_ALIVE_MS);
    expect(s.headersTimeout).toBeGreaterThan(s.keepAliveTimeout);
    expect(SERVER_KEEP_ALIVE_MS).toBeGreaterThan(CLIENT_IDLE_MS * 10);
    expect(CLIENT_IDLE_MS).toBeLessThan(5_000); // Node's default server keep-alive
  });
});
