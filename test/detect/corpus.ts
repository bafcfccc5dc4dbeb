/**
 * Row corpora for the detector's tests and benchmark: random (ciphertext-like) rows of every
 * weight type and row size, and synthetic realistic weight rows encoded the way llama.cpp would.
 */
import { randomFillSync } from "node:crypto";
import { GGML_TYPES, GgmlType, ggmlTypeName } from "../../plugin/core/gguf/constants.js";
import { encodeTensorData } from "../../plugin/core/gguf/quant.js";
import { rowBytes } from "../../plugin/core/gguf/rows.js";
import { Xoshiro128 } from "../../examples/random-model/random-model.js";

/** Row lengths (elements) the FN measurement covers, where the type's block size divides them. */
export const RANDOM_NE0 = [32, 64, 128, 256, 4096, 11008] as const;

/** Integer tensors and F64 are never quantized weights: they only get the byte backstop. */
const NOT_WEIGHTS = new Set<number>([GgmlType.I8, GgmlType.I16, GgmlType.I32, GgmlType.I64, GgmlType.F64]);

export const WEIGHT_TYPES: GgmlType[] = [...GGML_TYPES.keys()].filter((t) => !NOT_WEIGHTS.has(t)) as GgmlType[];

export interface Cell {
  readonly type: GgmlType;
  readonly ne0: number;
  readonly rowBytes: number;
  readonly label: string;
}

export function randomCells(types: readonly GgmlType[] = WEIGHT_TYPES): Cell[] {
  const cells: Cell[] = [];
  for (const type of types) {
    const bs = GGML_TYPES.get(type)!.blockSize;
    for (const ne0 of RANDOM_NE0) {
      if (ne0 % bs !== 0) continue;
      cells.push({ type, ne0, rowBytes: rowBytes(type, ne0), label: `${ggmlTypeName(type)}/${ne0}` });
    }
  }
  return cells;
}

/** Fill-and-visit `count` random rows of `rb` bytes, 4 MiB of randomness at a time. */
export function forEachRandomRow(rb: number, count: number, visit: (row: Uint8Array) => void, chunk = 4 << 20): void {
  const perChunk = Math.max(1, Math.floor(chunk / rb));
  const buf = new Uint8Array(Math.min(count, perChunk) * rb);
  for (let done = 0; done < count; ) {
    const n = Math.min(perChunk, count - done);
    const view = buf.subarray(0, n * rb);
    randomFillSync(view);
    for (let r = 0; r < n; r++) visit(view.subarray(r * rb, (r + 1) * rb));
    done += n;
  }
}

// ---- realistic rows ----

export const REALISTIC_TYPES = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0] as const;
export const REALISTIC_NE0 = [32, 64, 128, 256, 4096, 11008] as const;

class Rng {
  private x: Xoshiro128;
  private spare: number | undefined;
  constructor(seed: number) { this.x = new Xoshiro128(seed); }
  uniform(): number { return (this.x.next() + 0.5) / 4294967296; }
  gauss(): number {
    if (this.spare !== undefined) { const s = this.spare; this.spare = undefined; return s; }
    const u = this.uniform(), v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  laplace(): number { const u = this.uniform() - 0.5; return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u)) / Math.SQRT2; }
  studentT3(): number { const g = this.gauss(); const c = this.gauss() ** 2 + this.gauss() ** 2 + this.gauss() ** 2; return g / Math.sqrt(c / 3) / Math.sqrt(3); }
  int(n: number): number { return Math.floor(this.uniform() * n); }
}

export interface RealisticRow {
  readonly family: string;
  readonly values: Float32Array;
}

const STDS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.3, 1];

/** Realistic weight-row families of length ne0 (values in F32, before encoding). */
export function realisticRows(ne0: number, seed: number): RealisticRow[] {
  const r = new Rng(seed);
  const rows: RealisticRow[] = [];
  const make = (family: string, f: (i: number) => number): void => {
    const v = new Float32Array(ne0);
    for (let i = 0; i < ne0; i++) v[i] = f(i);
    rows.push({ family, values: v });
  };
  for (const s of STDS) {
    make(`gauss(${s})`, () => s * r.gauss());
    make(`laplace(${s})`, () => s * r.laplace());
    make(`student-t3(${s})`, () => s * r.studentT3());
    make(`uniform(${s})`, () => s * Math.sqrt(3) * (2 * r.uniform() - 1));
    // outliers: 0.5% of the elements (at least one) 20-100x the scale
    const nOut = Math.max(1, Math.round(ne0 * 0.005));
    const outAt = new Set<number>(Array.from({ length: nOut }, () => r.int(ne0)));
    make(`gauss+outliers(${s})`, (i) => (outAt.has(i) ? (r.uniform() < 0.5 ? -1 : 1) * s * (20 + 80 * r.uniform()) : s * r.gauss()));
    // per-32-block scale drift over 3 octaves (channels of different magnitude)
    let blockScale = s;
    make(`gauss-blockdrift(${s})`, (i) => { if (i % 32 === 0) blockScale = s * 2 ** (3 * r.uniform() - 1.5); return blockScale * r.gauss(); });
    make(`sparse95(${s})`, () => (r.uniform() < 0.95 ? 0 : s * r.gauss()));
    make(`half-zero(${s})`, (i) => (i < ne0 / 2 ? 0 : s * r.gauss()));
    make(`noise+spike(${s})`, (i) => (i === 0 ? s * 100 : s * r.gauss()));
  }
  for (const c of [1e-4, 1e-3, 0.01, -0.5, 1, 3, 50]) make(`constant(${c})`, () => c);
  for (const k of [1, 2, 3]) {
    const at = Array.from({ length: k }, () => r.int(ne0));
    const vals = at.map((_, j) => (j + 1) * 10 ** (-3 * r.uniform()) * (r.uniform() < 0.5 ? -1 : 1));
    make(`few-nonzero(${k})`, (i) => { const j = at.indexOf(i); return j >= 0 ? vals[j]! : 0; });
  }
  make("one-hot", (i) => (i === r.int(ne0) ? 1 : 0));
  make("alternating", (i) => (i % 2 ? 0.02 : -0.02));
  make("ramp", (i) => (i - ne0 / 2) / ne0);
  return rows;
}

/** Every realistic row of every realistic type and size, encoded: [label, type, bytes]. */
export function* encodedRealisticRows(seed = 7): Generator<{ label: string; type: GgmlType; bytes: Uint8Array }> {
  for (const ne0 of REALISTIC_NE0) {
    const rows = realisticRows(ne0, seed + ne0);
    for (const type of REALISTIC_TYPES) {
      if (ne0 % GGML_TYPES.get(type)!.blockSize !== 0) continue;
      for (const row of rows) {
        yield { label: `${ggmlTypeName(type)}/${ne0}/${row.family}`, type, bytes: encodeTensorData(type, row.values, ne0) };
      }
    }
  }
}
