/**
 * The embedded host's child process. Forked by embedded-host.ts with an IPC channel and its
 * WorkerConfig as JSON in argv[2]; it loads node-llama-cpp (CPU, prebuilt, never builds), serves
 * the Ollama API on 127.0.0.1 with a random port, reports {type: "ready", port}, then answers
 * the parent's register / unregister / ping / logs / exit requests.
 *
 * llama.cpp's log goes to a ring buffer (IPC op "logs"), never to stdout. Model paths are never
 * validated here: the parent validates every file before registering it.
 */
import { createServer } from "node:http";
import { hasKey } from "./host-key.js";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { handleRequest } from "./api.js";
import { ModelRegistry } from "./models.js";
import type { HostMessage, HostRequest, PingResult, WorkerConfig } from "./protocol.js";

if (typeof process.send !== "function") {
  console.error("secneuron embedded host worker: must be started with an IPC channel (child_process.fork)");
  process.exit(2);
}

const config = JSON.parse(process.argv[2] ?? "{}") as WorkerConfig;
const send = (m: HostMessage): void => {
  if (process.connected) process.send!(m);
};

// The parent going away must not leave an orphan holding models and a port.
process.on("disconnect", () => process.exit(0));

const logs: string[] = [];
const log = (line: string): void => {
  logs.push(line);
  if (logs.length > config.logLines) logs.splice(0, logs.length - config.logLines);
};

const t0 = performance.now();
const llama = await getLlama({
  gpu: false,
  build: "never",
  skipDownload: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.warn,
  logger: (level, message) => log(`[llama.cpp ${level}] ${message.trimEnd()}`),
});
const registry = new ModelRegistry(llama, config);
const ctx = { registry, config };

// Only the parent's front server (which holds the key) may talk to this loopback port.
const hostKey = process.env.SECNEURON_HOST_KEY ?? "";
delete process.env.SECNEURON_HOST_KEY;
const server = createServer((req, res) => {
  if (!hostKey || !hasKey(req, hostKey)) {
    req.resume();
    res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: "unauthorized" }));
    return;
  }
  handleRequest(ctx, req, res);
});
server.keepAliveTimeout = 5_000;
server.on("clientError", (_e, socket) => socket.destroy());

async function handle(req: HostRequest): Promise<unknown> {
  switch (req.op) {
    case "register":
      await registry.register(req.name, req.path, req.info);
      return null;
    case "unregister":
      await registry.unregister(req.name);
      return null;
    case "ping": {
      const r: PingResult = { loaded: registry.loadedNames(), registered: registry.list().map((e) => e.name) };
      return r;
    }
    case "logs":
      return logs.slice();
    case "exit":
      server.close();
      server.closeAllConnections();
      await registry.unloadAll();
      await llama.dispose();
      setImmediate(() => process.exit(0));
      return null;
  }
}

process.on("message", (raw: unknown) => {
  const req = raw as HostRequest;
  handle(req).then(
    (result) => send({ type: "response", id: req.id, ok: true, result }),
    (e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      send({ type: "response", id: req.id, ok: false, error: { name: err.name, message: err.message } });
    },
  );
});

server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  send({ type: "ready", port, startMs: performance.now() - t0 });
});
