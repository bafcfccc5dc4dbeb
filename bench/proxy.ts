/**
 * `npm run bench:proxy [-- --requests 400 --tokens 200 --json]`: the sidecar's overhead on the same
 * embedded llama.cpp host, direct vs through the proxy, in one run: added latency (p50, p99) of a
 * non-streaming request, and streamed tokens/s with 1 and 64 concurrent streams. The load client
 * runs in its own process (bench/proxy-client.ts), as a real caller would.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Agent, request } from "node:http";
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startSidecar } from "../test/sidecar/helpers.js";

const { values } = parseArgs({ options: { requests: { type: "string", default: "400" }, tokens: { type: "string", default: "200" }, json: { type: "boolean" } } });
const N = Number(values.requests);
const TOKENS = Number(values.tokens);
// Idle sockets expire before the servers' (see plugin/edges/keep-alive.ts).
const agent = new Agent({ keepAlive: true, maxSockets: 256, timeout: 4_000 });

function post(base: string, path: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string; ms: number; chunks: number }> {
  const u = new URL(base);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers } }, (res) => {
      let text = "";
      let chunks = 0;
      res.setEncoding("utf8");
      res.on("data", (c: string) => { text += c; chunks++; });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, ms: performance.now() - t0, chunks }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]!; };

async function main(): Promise<void> {
  const dir = mkdtempSync(join("/dev/shm", "secneuron-bench-proxy-"));
  const f = await startSidecar(dir);
  try {
    const auth = { authorization: `Bearer ${f.tokens.root}` };
    const small = JSON.stringify({ model: "oracle", prompt: "abc", stream: false, options: { temperature: 0, num_predict: 1 } });
    // One request through the sidecar builds the variant and registers it with the host.
    const warm = await post(f.sidecar.url, "/api/generate", small, auth);
    if (warm.status !== 200) throw new Error(`warm-up failed: ${warm.status} ${warm.text}`);
    const target = await f.sidecar.host.ensureModel("oracle--digits.letters", (await import("node:fs")).readdirSync(join(dir, "variants")).map((x) => join(dir, "variants", x)).find((x) => x.endsWith(".gguf"))!);
    // The load client runs in its own process: its work must not land on the sidecar's loop.
    const cfg = {
      direct: { url: target.baseUrl, headers: { ...target.headers }, model: target.modelName },
      proxied: { url: f.sidecar.url, headers: auth, model: "oracle" },
      requests: N, tokens: TOKENS,
    };
    // Asynchronous: the sidecar in this process must keep serving while the client runs.
    const { stdout: out } = await promisify(execFile)(process.execPath, [fileURLToPath(new URL("./proxy-client.js", import.meta.url)), JSON.stringify(cfg)], { encoding: "utf8", maxBuffer: 64 << 20 });
    const r = JSON.parse(out.trim().split("\n").at(-1)!) as { direct: number[]; proxied: number[]; streams: Record<string, { direct: number; proxied: number }> };
    const direct = r.direct;
    const proxied = r.proxied;
    const tput: Record<string, { direct: number; proxied: number; ratio: number }> = {};
    for (const [k, v] of Object.entries(r.streams)) tput[k] = { direct: Number(v.direct.toFixed(0)), proxied: Number(v.proxied.toFixed(0)), ratio: Number((v.proxied / v.direct).toFixed(3)) };
    const res = {
      bench: "proxy", host: "embedded", requests: N, client: "separate process",
      directP50Ms: Number(pct(direct, 0.5).toFixed(3)), directP99Ms: Number(pct(direct, 0.99).toFixed(3)),
      proxiedP50Ms: Number(pct(proxied, 0.5).toFixed(3)), proxiedP99Ms: Number(pct(proxied, 0.99).toFixed(3)),
      addedP50Ms: Number((pct(proxied, 0.5) - pct(direct, 0.5)).toFixed(3)), addedP99Ms: Number((pct(proxied, 0.99) - pct(direct, 0.99)).toFixed(3)),
      tokensPerStream: TOKENS, ...tput, targets: { addedP50Ms: 1, throughputRatio: 0.95 },
    };
    if (!values.json) {
      console.log(`| measure | direct | through sidecar | added / ratio |\n|---|---:|---:|---:|`);
      console.log(`| non-streaming p50 (ms) | ${res.directP50Ms} | ${res.proxiedP50Ms} | +${res.addedP50Ms} |`);
      console.log(`| non-streaming p99 (ms) | ${res.directP99Ms} | ${res.proxiedP99Ms} | +${res.addedP99Ms} |`);
      for (const [k, v] of Object.entries(tput)) console.log(`| tokens/s, ${k.replace("streams", "")} stream(s) | ${v.direct} | ${v.proxied} | x${v.ratio} |`);
    }
    console.log(JSON.stringify(res));
  } finally {
    await f.sidecar.close();
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
