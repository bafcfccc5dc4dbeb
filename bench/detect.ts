/**
 * Detection benchmark: false negatives over >= 1,000,000 random (ciphertext) rows across every
 * weight type and row size, false positives over every row of the oracle fixtures, generated
 * random-weight models and synthetic realistic rows, and throughput against a byte-sum loop.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/detect.js [fnRows=1000000] [--big]
 * --big generates the FP models at 4096 x 11008 (1 layer) instead of 2048 x 5504.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { GgmlType, ggmlTypeName } from "../plugin/core/gguf/constants.js";
import { classifyRow } from "../plugin/core/detect/classify.js";
import { rowBytes } from "../plugin/core/gguf/rows.js";
import { scanGguf } from "../plugin/edges/scan.js";
import { Xoshiro128, fillRandomRows, writeRandomLlamaModel } from "../examples/random-model/random-model.js";
import { ensureOracleFixtures } from "../examples/fixtures/build-fixtures.js";
import { encodedRealisticRows, forEachRandomRow, randomCells } from "../test/detect/corpus.js";
import { decidable } from "../test/detect/helpers.js";
import { tmpfsRoot } from "../test/helpers/tmp.js";
import { randomFillSync } from "node:crypto";

const args = process.argv.slice(2);
const FN_ROWS = Number(args.find((a) => /^\d+$/.test(a)) ?? 1_000_000);
const BIG = args.includes("--big");

// ---- false negatives ----
const cells = randomCells();
const per = Math.ceil(FN_ROWS / cells.length);
let fnRows = 0, fnMiss = 0, fnDecRows = 0, fnDecMiss = 0;
const thin: string[] = [];
let t0 = performance.now();
for (const c of cells) {
  let m = 0;
  forEachRandomRow(c.rowBytes, per, (row) => { if (!classifyRow(c.type, row).encrypted) m++; });
  fnRows += per; fnMiss += m;
  if (decidable(c)) { fnDecRows += per; fnDecMiss += m; }
  else thin.push(`${c.label.padEnd(14)} ${String(c.rowBytes).padStart(6)} B  FN ${m}/${per} = ${(m / per).toExponential(2)}`);
}
const fnSeconds = (performance.now() - t0) / 1000;
console.log(`FN: ${fnRows} random rows in ${cells.length} (type, ne0) cells, ${per} per cell, ${fnSeconds.toFixed(1)} s`);
console.log(`  decidable cells: ${fnDecMiss} misses / ${fnDecRows} rows`);
console.log(`  thin-evidence cells (few blocks, measured rate):`);
for (const l of thin) console.log(`    ${l}`);

// ---- false positives ----
let fpRows = 0, fp = 0;
const fpBy: Record<string, [number, number]> = {};
const note = (k: string, rows: number, bad: number): void => { fpBy[k] = [rows, bad]; fpRows += rows; fp += bad; };
let syn = 0, synBad = 0;
for (const r of encodedRealisticRows()) { syn++; if (classifyRow(r.type, r.bytes).encrypted) synBad++; }
note("synthetic realistic rows", syn, synBad);
const fixtures = await ensureOracleFixtures();
for (const [label, path] of Object.entries(fixtures)) {
  const r = await scanGguf(path, { allTensors: true });
  note(`oracle-${label} (all 2-D tensors)`, r.rowsScanned, r.encrypted.length);
}
const dir = mkdtempSync(join(tmpfsRoot(), "secneuron-bench-detect-"));
const scanRates: string[] = [];
try {
  const dims = BIG ? { nEmbd: 4096, nFf: 11008, nLayer: 1, nHead: 32, nHeadKv: 32 } : { nEmbd: 2048, nFf: 5504, nLayer: 2, nHead: 16, nHeadKv: 16 };
  for (const type of [GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0]) {
    const path = join(dir, `${ggmlTypeName(type)}.gguf`);
    await writeRandomLlamaModel(path, { type, dims, seed: 5 });
    const r = await scanGguf(path, { allTensors: true });
    note(`random-weight ${ggmlTypeName(type)} ${dims.nEmbd}x${dims.nFf} (all 2-D)`, r.rowsScanned, r.encrypted.length);
    scanRates.push(`${ggmlTypeName(type)} ${(r.bytesScanned / r.seconds / 1e9).toFixed(2)} GB/s`);
    rmSync(path);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`FP: ${fp} / ${fpRows} real rows`);
for (const [k, [n, b]] of Object.entries(fpBy)) console.log(`  ${k.padEnd(44)} ${String(b).padStart(3)} / ${n}`);
console.log(`scanGguf (file on tmpfs, all 2-D tensors, includes reads): ${scanRates.join(", ")}`);

// ---- throughput ----
function byteSum(buf: Uint8Array, rb: number): number {
  let s = 0;
  for (let o = 0; o < buf.length; o += rb) {
    let a = 0;
    const end = o + rb;
    for (let i = o; i < end; i++) a = (a + buf[i]!) | 0;
    s ^= a;
  }
  return s;
}
const SIZE = 64 << 20;
const rows: Array<{ type: string; data: string; gbps: number; sumGbps: number }> = [];
for (const type of [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K]) {
  const rb = rowBytes(type, 4096);
  const n = Math.floor(SIZE / rb);
  for (const data of ["weights", "random"] as const) {
    const buf = new Uint8Array(n * rb);
    if (data === "random") randomFillSync(buf);
    else if (type === GgmlType.F16 || type === GgmlType.Q8_0 || type === GgmlType.Q4_0) fillRandomRows(type, buf, new Xoshiro128(3));
    else if (type === GgmlType.F32 || type === GgmlType.BF16) {
      const dv = new DataView(buf.buffer); const x = new Xoshiro128(4);
      for (let i = 0; i < buf.length; i += 4) { const v = (x.next() / 2 ** 32 - 0.5) * 0.04; if (type === GgmlType.F32) dv.setFloat32(i, v, true); else { dv.setFloat32(i, v, true); dv.setUint16(i, dv.getUint16(i + 2, true), true); } }
    } else continue; // no K-quant encoder: random only
    let flagged = 0;
    const time = (f: () => void): number => { f(); let best = Infinity; for (let k = 0; k < 3; k++) { const s = performance.now(); f(); best = Math.min(best, performance.now() - s); } return best / 1000; };
    const tc = time(() => { flagged = 0; for (let r = 0; r < n; r++) if (classifyRow(type, buf.subarray(r * rb, (r + 1) * rb)).encrypted) flagged++; });
    let sink = 0;
    const ts = time(() => { sink ^= byteSum(buf, rb); });
    if (sink === 0.5) console.log(sink);
    rows.push({ type: ggmlTypeName(type), data: `${data} (${flagged}/${n} flagged)`, gbps: buf.length / tc / 1e9, sumGbps: buf.length / ts / 1e9 });
  }
}
console.log("throughput, one core, 64 MiB of 4096-element rows (best of 3):");
console.log(`  ${"type".padEnd(6)} ${"data".padEnd(28)} ${"classify".padStart(10)} ${"byte-sum".padStart(10)}`);
for (const r of rows) console.log(`  ${r.type.padEnd(6)} ${r.data.padEnd(28)} ${(r.gbps.toFixed(2) + " GB/s").padStart(10)} ${(r.sumGbps.toFixed(2) + " GB/s").padStart(10)}`);
console.log(JSON.stringify({
  bench: "detect",
  fn: { rows: fnRows, misses: fnMiss, decidableRows: fnDecRows, decidableMisses: fnDecMiss, cells: cells.length, seconds: fnSeconds },
  fp: { rows: fpRows, falsePositives: fp },
  throughputGBps: Object.fromEntries(rows.map((r) => [`${r.type}:${r.data.split(" ")[0]}`, { classify: +r.gbps.toFixed(3), byteSum: +r.sumGbps.toFixed(3) }])),
}));
