/**
 * llama-imatrix output files, read and written (formats of tools/imatrix/imatrix.cpp and
 * common/imatrix-loader.cpp in llama.cpp v0.4.0 as bundled with node-llama-cpp 3.21.1):
 *
 * - GGUF (current default, `imatrix.gguf`): `general.type = "imatrix"`, `imatrix.datasets`
 *   (string array), `imatrix.chunk_count` and `imatrix.chunk_size` (u32); per weight `<name>`
 *   two F32 tensors: `<name>.in_sum2` [n_in, n_mat] = raw sums of x^2 over tokens and
 *   `<name>.counts` [1, n_mat] = tokens seen. Mean x^2 = in_sum2 / counts.
 * - Legacy binary `.dat` (`--output-format dat`), little-endian: i32 n_entries; per entry i32
 *   name length, name bytes, i32 ncall, i32 nval, f32[nval] = (sum x^2 / tokens) * ncall; then
 *   optionally i32 chunk count, i32 dataset-name length, dataset bytes. Mean x^2 = value / ncall;
 *   the token count is not stored (we report ncall, the chunk count).
 *
 * For `blk.N.ffn_down.weight` the input x is the FFN activation silu(gate·x)*(up·x): its mean
 * square per neuron is exactly our profile's `meanSquare`. An imatrix has no mean |a|, so a task
 * imported from one uses sqrt(mean a^2) (the RMS, >= mean |a|) as importance.
 */
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { GgmlType, GgufValueType } from "../../core/gguf/constants.js";
import { kv, type GgufMetadata } from "../../core/gguf/types.js";
import { ProfileError, type LayerStats, type Profile, type TaskProfile } from "../../core/profile/profile.js";
import { readGgufHeader, writeGgufFile, type TensorWithData } from "../gguf-file.js";

export interface ImatrixEntry {
  /** Weight name, e.g. `blk.3.ffn_down.weight`. */
  readonly name: string;
  /** Input width (values per matrix). */
  readonly rowLength: number;
  /** Matrices (experts) in the weight; 1 for dense weights. */
  readonly nMat: number;
  /** Mean x^2 per input, nMat * rowLength values. */
  readonly meanSquare: Float64Array;
  /** GGUF: tokens seen per matrix; legacy: ncall (chunks), per matrix. */
  readonly counts: readonly number[];
}

export interface Imatrix {
  readonly format: "gguf" | "legacy";
  readonly datasets: readonly string[];
  readonly chunkCount: number;
  /** Tokens per chunk (GGUF only; 0 when unknown). */
  readonly chunkSize: number;
  readonly entries: readonly ImatrixEntry[];
}

export interface ImatrixFfnLayer {
  readonly layer: number;
  readonly meanSquare: Float64Array;
  /** Tokens (GGUF) or chunks (legacy). */
  readonly count: number;
}

const FFN_DOWN = /^blk\.(\d+)\.ffn_down\.weight$/;
const GGUF_MAGIC = Buffer.from("GGUF");

function bad(path: string, message: string): never {
  throw new ProfileError("IMATRIX_INVALID", `${path}: ${message}`, { path });
}

function readRange(path: string, fd: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const r = readSync(fd, b, got, length - got, offset + got);
    if (r === 0) bad(path, `truncated at byte ${offset + got}`);
    got += r;
  }
  return b;
}

function f32s(b: Buffer): Float32Array {
  const out = new Float32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

function importGguf(path: string): Imatrix {
  const h = readGgufHeader(path);
  const str = (k: string): string | undefined => {
    const v = h.metadata.get(k);
    return v && v.type === GgufValueType.STRING ? v.value : undefined;
  };
  const u32 = (k: string): number => {
    const v = h.metadata.get(k);
    return v && (v.type === GgufValueType.UINT32 || v.type === GgufValueType.INT32) ? v.value : 0;
  };
  const type = str("general.type");
  if (type !== undefined && type !== "imatrix") bad(path, `general.type is "${type}", not an imatrix (a model file?)`);
  const ds = h.metadata.get("imatrix.datasets");
  const datasets = ds && ds.type === GgufValueType.ARRAY && ds.itemType === GgufValueType.STRING ? [...ds.value] : [];
  const byName = new Map<string, { sums?: (typeof h.tensors)[number]; counts?: (typeof h.tensors)[number] }>();
  for (const t of h.tensors) {
    let base: string | undefined;
    let kind: "sums" | "counts" | undefined;
    if (t.name.endsWith(".in_sum2")) [base, kind] = [t.name.slice(0, -".in_sum2".length), "sums"];
    else if (t.name.endsWith(".counts")) [base, kind] = [t.name.slice(0, -".counts".length), "counts"];
    if (!base || !kind) continue;
    const e = byName.get(base) ?? {};
    e[kind] = t;
    byName.set(base, e);
  }
  if (byName.size === 0) {
    bad(path, h.metadata.has("general.architecture") ? "a model file, not an imatrix" : "no <name>.in_sum2 / <name>.counts tensors (not an imatrix)");
  }
  const fd = openSync(path, "r");
  try {
    const entries: ImatrixEntry[] = [];
    for (const [name, { sums, counts }] of byName) {
      if (!sums || !counts) bad(path, `mismatched sums and counts for ${name}`);
      if (sums.type !== GgmlType.F32 || counts.type !== GgmlType.F32) bad(path, `sums and counts for ${name} must be F32`);
      const rowLength = sums.ne[0]!;
      const nMat = sums.ne.slice(1).reduce((a, b) => a * b, 1);
      const nCounts = counts.ne.reduce((a, b) => a * b, 1);
      if (nCounts !== nMat) bad(path, `${name}: ${nCounts} counts for ${nMat} matrices`);
      const s = f32s(readRange(path, fd, h.dataOffset + sums.offset, sums.byteLength));
      const c = Array.from(f32s(readRange(path, fd, h.dataOffset + counts.offset, counts.byteLength)), (x) => Math.round(x));
      const meanSquare = new Float64Array(s.length);
      for (let m = 0; m < nMat; m++) {
        const n = c[m]!;
        if (!(n >= 0)) bad(path, `${name}: bad count ${n}`);
        for (let i = 0; i < rowLength; i++) meanSquare[m * rowLength + i] = n > 0 ? s[m * rowLength + i]! / n : 0;
      }
      for (const v of meanSquare) if (!Number.isFinite(v) || v < 0) bad(path, `${name}: non-finite or negative sum`);
      entries.push({ name, rowLength, nMat, meanSquare, counts: c });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { format: "gguf", datasets, chunkCount: u32("imatrix.chunk_count"), chunkSize: u32("imatrix.chunk_size"), entries };
  } finally {
    closeSync(fd);
  }
}

function importLegacy(path: string): Imatrix {
  const b = readFileSync(path);
  let p = 0;
  const i32 = (what: string): number => {
    if (p + 4 > b.length) bad(path, `truncated reading ${what} at byte ${p}`);
    const v = b.readInt32LE(p);
    p += 4;
    return v;
  };
  const n = i32("n_entries");
  if (n < 1 || n > 1 << 20) bad(path, `n_entries ${n} out of range (not an imatrix?)`);
  const entries: ImatrixEntry[] = [];
  for (let e = 0; e < n; e++) {
    const len = i32(`entry ${e} name length`);
    if (len < 1 || len > 4096 || p + len > b.length) bad(path, `entry ${e}: bad name length ${len}`);
    const name = b.toString("utf8", p, p + len);
    p += len;
    const ncall = i32(`${name} ncall`);
    const nval = i32(`${name} nval`);
    if (nval < 1 || p + nval * 4 > b.length) bad(path, `${name}: bad value count ${nval}`);
    const meanSquare = new Float64Array(nval);
    for (let i = 0; i < nval; i++) {
      const v = b.readFloatLE(p + i * 4);
      if (!Number.isFinite(v) || v < 0) bad(path, `${name}[${i}]: non-finite or negative value ${v}`);
      meanSquare[i] = ncall > 0 ? v / ncall : 0;
    }
    p += nval * 4;
    entries.push({ name, rowLength: nval, nMat: 1, meanSquare, counts: [ncall] });
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (p + 4 <= b.length) {
    chunkCount = i32("chunk count");
    if (p + 4 <= b.length) {
      const len = i32("dataset name length");
      if (len > 0 && p + len <= b.length) datasets.push(b.toString("utf8", p, p + len));
    }
  }
  return { format: "legacy", datasets, chunkCount, chunkSize: 0, entries };
}

/** Read a llama-imatrix file (GGUF or legacy .dat, detected by the GGUF magic). */
export function importImatrix(path: string): Imatrix {
  let head: Buffer;
  try {
    const fd = openSync(path, "r");
    try {
      head = Buffer.alloc(4);
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new ProfileError("IMATRIX_UNREADABLE", `cannot read imatrix ${path}: ${(e as Error).message}`, { path });
  }
  return head.equals(GGUF_MAGIC) ? importGguf(path) : importLegacy(path);
}

/** The ffn_down entries of an imatrix, by layer (dense FFNs only). */
export function imatrixFfnLayers(im: Imatrix): ImatrixFfnLayer[] {
  const out: ImatrixFfnLayer[] = [];
  for (const e of im.entries) {
    const m = FFN_DOWN.exec(e.name);
    if (!m) continue;
    if (e.nMat !== 1) throw new ProfileError("IMATRIX_UNSUPPORTED", `${e.name} has ${e.nMat} matrices: only dense FFNs are supported`);
    out.push({ layer: Number(m[1]), meanSquare: e.meanSquare, count: e.counts[0] ?? 0 });
  }
  return out.sort((a, b) => a.layer - b.layer);
}

/**
 * A profile task from an imatrix: meanSquare = mean a^2 of the ffn_down input, importance =
 * sqrt(meanSquare) (RMS; the imatrix holds no mean |a|). Layers absent from the imatrix are left
 * out (they count as all-zero). `tokens` is the GGUF token count (0 for legacy files).
 */
export function imatrixTaskProfile(im: Imatrix, model: { readonly blockCount: number; readonly feedForwardLength: number }, path = "imatrix"): TaskProfile {
  const layers: LayerStats[] = [];
  let tokens = 0;
  for (const l of imatrixFfnLayers(im)) {
    if (l.layer >= model.blockCount) throw new ProfileError("IMATRIX_MISMATCH", `${path}: layer ${l.layer} does not exist in a ${model.blockCount}-layer model`);
    if (l.meanSquare.length !== model.feedForwardLength) {
      throw new ProfileError("IMATRIX_MISMATCH", `${path}: blk.${l.layer}.ffn_down has ${l.meanSquare.length} inputs, the model's FFN has ${model.feedForwardLength} neurons`);
    }
    const meanSquare = Array.from(l.meanSquare, (x) => (x === 0 ? 0 : Number(x.toPrecision(7))));
    const importance = Array.from(l.meanSquare, (x) => (x === 0 ? 0 : Number(Math.sqrt(x).toPrecision(7))));
    layers.push({ layer: l.layer, importance, meanSquare });
    if (im.format === "gguf") tokens = Math.max(tokens, l.count);
  }
  if (layers.length === 0) throw new ProfileError("IMATRIX_NO_FFN", `${path}: no blk.N.ffn_down.weight entries`);
  return { tokens, layers };
}

export interface ImatrixWriteEntry {
  readonly name: string;
  /** Raw sums of x^2 (n_mat * row length). */
  readonly sumSq: ArrayLike<number>;
  /** Tokens seen (per matrix; one number for dense). */
  readonly count: number;
}

export interface ImatrixWriteOptions {
  readonly format?: "gguf" | "legacy";
  readonly datasets?: readonly string[];
  readonly chunkCount?: number;
  readonly chunkSize?: number;
}

/**
 * Write an imatrix file in llama-imatrix's format (GGUF by default), e.g. to hand a task
 * profile to llama-quantize. Entries are written sorted by name, as llama-imatrix does.
 */
export async function writeImatrix(path: string, entries: readonly ImatrixWriteEntry[], opts: ImatrixWriteOptions = {}): Promise<void> {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const chunkSize = opts.chunkSize ?? 512;
  const chunkCount = opts.chunkCount ?? Math.max(0, ...sorted.map((e) => Math.ceil(e.count / chunkSize)));
  if ((opts.format ?? "gguf") === "gguf") {
    const md: GgufMetadata = new Map();
    md.set("general.type", kv.str("imatrix"));
    md.set("imatrix.datasets", kv.strs(opts.datasets ?? []));
    md.set("imatrix.chunk_count", kv.u32(chunkCount));
    md.set("imatrix.chunk_size", kv.u32(chunkSize));
    const tensors: TensorWithData[] = [];
    for (const e of sorted) {
      const sums = Float32Array.from(e.sumSq);
      tensors.push({ name: `${e.name}.in_sum2`, ne: [sums.length, 1], type: GgmlType.F32, data: new Uint8Array(sums.buffer) });
      tensors.push({ name: `${e.name}.counts`, ne: [1, 1], type: GgmlType.F32, data: new Uint8Array(Float32Array.of(e.count).buffer) });
    }
    await writeGgufFile(path, md, tensors);
    return;
  }
  const parts: Buffer[] = [];
  const i32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return b;
  };
  parts.push(i32(sorted.length));
  for (const e of sorted) {
    const name = Buffer.from(e.name, "utf8");
    const ncall = Math.max(1, Math.ceil(e.count / chunkSize));
    parts.push(i32(name.length), name, i32(ncall), i32(e.sumSq.length));
    const vals = Buffer.alloc(e.sumSq.length * 4);
    for (let i = 0; i < e.sumSq.length; i++) vals.writeFloatLE(e.count > 0 ? (e.sumSq[i]! / e.count) * ncall : 1, i * 4);
    parts.push(vals);
  }
  parts.push(i32(chunkCount));
  const ds = Buffer.from(opts.datasets?.[opts.datasets.length - 1] ?? "", "utf8");
  parts.push(i32(ds.length), ds);
  await writeFile(path, Buffer.concat(parts));
}

/** A profile task as imatrix entries for ffn_down (sum a^2 = meanSquare * tokens). */
export function profileTaskImatrixEntries(profile: Profile, task: string): ImatrixWriteEntry[] {
  const t = profile.tasks[task];
  if (!t) throw new ProfileError("PROFILE_UNKNOWN_TASK", `task '${task}' is not in the profile`);
  const n = Math.max(1, t.tokens);
  return t.layers.map((l) => {
    const ms = l.meanSquare ?? l.importance.map((x) => x * x);
    return { name: `blk.${l.layer}.ffn_down.weight`, sumSq: ms.map((x) => x * n), count: n };
  });
}
