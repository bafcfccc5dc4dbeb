/**
 * The load client of bench:proxy, in its own process so that its work does not land on the
 * sidecar's event loop. Reads a JSON config from argv[2], prints one JSON result line.
 */
import { Agent, request } from "node:http";

interface Target { url: string; headers: Record<string, string>; model: string }
interface Config { direct: Target; proxied: Target; requests: number; tokens: number }

const cfg = JSON.parse(process.argv[2]!) as Config;
// Idle sockets expire before the servers' (see plugin/edges/keep-alive.ts).
const agent = new Agent({ keepAlive: true, maxSockets: 256, timeout: 4_000 });

function post(t: Target, body: string): Promise<{ status: number; text: string; ms: number }> {
  const u = new URL(t.url);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: "/api/generate", method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...t.headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => { text += c; });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, ms: performance.now() - t0 }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]!; };
const small = (t: Target) => JSON.stringify({ model: t.model, prompt: "abc", stream: false, options: { temperature: 0, num_predict: 1 } });
const stream = (t: Target) => JSON.stringify({ model: t.model, prompt: "abc", stream: true, options: { temperature: 0, num_predict: cfg.tokens } });

async function tokensPerSecond(t: Target, concurrency: number): Promise<number> {
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: concurrency }, () => post(t, stream(t))));
  const secs = (performance.now() - t0) / 1000;
  let tokens = 0;
  for (const r of rs) {
    if (r.status !== 200) throw new Error(`stream failed: ${r.status} ${r.text.slice(0, 200)}`);
    tokens += JSON.parse(r.text.trim().split("\n").at(-1)!).eval_count;
  }
  return tokens / secs;
}

async function main(): Promise<void> {
  const direct: number[] = [];
  const proxied: number[] = [];
  for (let i = 0; i < 30; i++) { await post(cfg.direct, small(cfg.direct)); await post(cfg.proxied, small(cfg.proxied)); }
  for (let i = 0; i < cfg.requests; i++) {
    const a = await post(cfg.direct, small(cfg.direct));
    const b = await post(cfg.proxied, small(cfg.proxied));
    if (a.status !== 200 || b.status !== 200) throw new Error(`request failed: ${a.status} ${b.status} ${b.text.slice(0, 200)}`);
    direct.push(a.ms);
    proxied.push(b.ms);
  }
  const streams: Record<string, { direct: number; proxied: number }> = {};
  for (const c of [1, 64]) {
    const d: number[] = [];
    const p: number[] = [];
    for (let rep = 0; rep < (c === 1 ? 7 : 3); rep++) {
      d.push(await tokensPerSecond(cfg.direct, c));
      p.push(await tokensPerSecond(cfg.proxied, c));
    }
    streams[`streams${c}`] = { direct: pct(d, 0.5), proxied: pct(p, 0.5) };
  }
  console.log(JSON.stringify({ direct, proxied, streams }));
  agent.destroy();
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
