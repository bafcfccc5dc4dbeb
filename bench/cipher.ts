/**
 * Row-cipher throughput: decrypt (verify + decrypt in place) of >= 1 GiB in row-sized spans for
 * each available backend, against memcpy over the same buffers in the same run. Median of
 * several repetitions; the last line is one JSON object with every figure.
 * Run: npx tsc -p tsconfig.json && npm run bench:cipher   (env BENCH_GIB, BENCH_REPS)
 */
import { randomFillSync } from "node:crypto";
import { cpus } from "node:os";
import { RowSpanTable } from "../plugin/core/cipher/row-cipher.js";
import type { RowCipherBackend } from "../plugin/core/ports.js";
import { describeBackends, loadBackend } from "../ffi/load.js";
import type { NativeRowCipherBackend } from "../ffi/backends/native.js";

const GIB = Number(process.env.BENCH_GIB ?? 1);
const REPS = Number(process.env.BENCH_REPS ?? 5);
const ROWS = [
  { kind: "Q8_0 x4096", bytes: 4352 },
  { kind: "F16 x4096", bytes: 8192 },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function timeGBs(bytes: number, fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  const ns = Number(process.hrtime.bigint() - t0);
  return bytes / ns; // bytes per ns = GB/s
}

interface Row {
  rows: string;
  impl: string;
  gbs: number;
  reps: number;
}

function main(): void {
  const status = describeBackends();
  const size = Math.floor(GIB * 2 ** 30);
  const data = Buffer.allocUnsafe(size);
  const dst = Buffer.allocUnsafe(size);
  randomFillSync(data);
  dst.fill(1);
  const key = new Uint8Array(32).map((_, i) => i * 13 + 7);
  const results: Row[] = [];

  const backends: Array<{ label: string; be: RowCipherBackend; reps: number }> = [];
  const cLib = status.find((s) => s.name === "c")?.available ? (loadBackend("c", { threads: 0 }) as NativeRowCipherBackend) : null;
  if (status.find((s) => s.name === "cuda")?.available) backends.push({ label: "cuda", be: loadBackend("cuda"), reps: REPS });
  if (cLib) {
    backends.push({ label: `c (${cpus().length} threads)`, be: cLib, reps: REPS });
    backends.push({ label: "c (1 thread)", be: loadBackend("c", { threads: 1 }), reps: Math.min(REPS, 3) });
  }
  backends.push({ label: "js node:crypto", be: loadBackend("js"), reps: Math.min(REPS, 3) });

  console.log(`row-cipher decrypt bench: ${(size / 2 ** 30).toFixed(2)} GiB per pass, median of reps; ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"})`);
  for (const b of backends) console.log(`  ${b.label}: ${b.be.detail}`);

  for (const { kind, bytes } of ROWS) {
    const n = Math.floor(size / bytes);
    const spans = RowSpanTable.contiguous(0, bytes, n, 7);
    const span = n * bytes;
    const memJs: number[] = [];
    const memC: number[] = [];
    for (let r = 0; r < REPS; r++) {
      memJs.push(timeGBs(span, () => data.copy(dst, 0, 0, span)));
      if (cLib) memC.push(timeGBs(span, () => cLib.library.memcpy(dst.subarray(0, span), data.subarray(0, span), 0)));
    }
    results.push({ rows: kind, impl: "memcpy (Buffer.copy)", gbs: median(memJs), reps: REPS });
    if (cLib) results.push({ rows: kind, impl: `memcpy (C, ${cpus().length} threads)`, gbs: median(memC), reps: REPS });
    for (const { label, be, reps } of backends) {
      const dec: number[] = [];
      for (let r = 0; r < reps; r++) {
        const tags = be.encryptRows(data, spans, key); // untimed: puts ciphertext back
        let failed = 0;
        dec.push(timeGBs(span, () => (failed = be.decryptRows(data, spans, key, tags).failed)));
        if (failed) throw new Error(`${label}: ${failed} rows failed to authenticate`);
      }
      results.push({ rows: kind, impl: `decrypt ${label}`, gbs: median(dec), reps });
    }
  }

  const memRef = (rows: string) => Math.max(...results.filter((r) => r.rows === rows && r.impl.startsWith("memcpy")).map((r) => r.gbs));
  const js = (rows: string) => results.find((r) => r.rows === rows && r.impl === "decrypt js node:crypto")!.gbs;
  console.log("");
  console.log("| rows | implementation | GB/s | x memcpy | x node:crypto | reps |");
  console.log("|---|---|---:|---:|---:|---:|");
  for (const r of results) {
    console.log(
      `| ${r.rows} | ${r.impl} | ${r.gbs.toFixed(2)} | ${(r.gbs / memRef(r.rows)).toFixed(2)} | ${(r.gbs / js(r.rows)).toFixed(2)} | ${r.reps} |`,
    );
  }
  console.log(
    JSON.stringify({
      bench: "row-cipher-decrypt",
      bytesPerPass: size,
      cpus: cpus().length,
      results: results.map((r) => ({
        ...r,
        gbs: Number(r.gbs.toFixed(3)),
        xMemcpy: Number((r.gbs / memRef(r.rows)).toFixed(3)),
        xNodeCrypto: Number((r.gbs / js(r.rows)).toFixed(3)),
      })),
    }),
  );
}

main();
