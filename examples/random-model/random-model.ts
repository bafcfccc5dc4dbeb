/**
 * Random-weight llama models of any size, for benchmarks and fuzzing: valid GGUF with plausible
 * weights (small magnitudes, real scales), generated straight in the target type from a seeded
 * PRNG and streamed to disk in bounded memory, so multi-GB files take seconds, not minutes.
 */
import { GgmlType, ggmlTypeName } from "../../plugin/core/gguf/constants.js";
import { BYTE_VOCAB, llamaMetadata, llamaTensorShapes, type LlamaDims } from "../../plugin/core/gguf/byte-vocab.js";
import { f32ToF16Bits } from "../../plugin/core/gguf/quant.js";
import { rowBytes } from "../../plugin/core/gguf/rows.js";
import type { GgufHeader } from "../../plugin/core/gguf/types.js";
import { writeGgufStream, type WriteOptions } from "../../plugin/edges/gguf-file.js";
import { GgufFormatError } from "../../plugin/errors.js";

export const RANDOM_MODEL_TYPES = [GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0] as const;

/** llama.cpp's file_type numbers (LLAMA_FTYPE_*) for the types we generate. */
const FILE_TYPE: Record<number, number> = { [GgmlType.F16]: 1, [GgmlType.Q8_0]: 7, [GgmlType.Q4_0]: 2 };

export const DEFAULT_DIMS: LlamaDims = { contextLength: 4096, nEmbd: 4096, nLayer: 8, nFf: 11008, nHead: 32, nHeadKv: 32, rmsEpsilon: 1e-5 };

/** xoshiro128**: fast, seedable, good enough for weights. */
export class Xoshiro128 {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    let x = seed >>> 0 || 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      // splitmix32 to spread the seed
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }
  fill(u32: Uint32Array): void {
    for (let i = 0; i < u32.length; i++) u32[i] = this.next();
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Fill `out` with rows of random weights of `type` (whole blocks). */
export function fillRandomRows(type: GgmlType, out: Uint8Array, rng: Xoshiro128): void {
  const u32 = new Uint32Array(out.buffer, out.byteOffset, out.byteLength >>> 2);
  rng.fill(u32);
  for (let i = u32.length * 4; i < out.length; i++) out[i] = rng.next() & 0xff;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  switch (type) {
    case GgmlType.F16:
      // Keep magnitude in [2^-9, 2^-3): random sign and mantissa, exponent 6..11 of 31.
      for (let i = 0; i < out.length; i += 2) {
        const r = dv.getUint16(i, true);
        dv.setUint16(i, (r & 0x83ff) | ((6 + ((r >>> 10) % 6)) << 10), true);
      }
      return;
    // Quantized blocks keep the invariants of llama.cpp's reference quantizers, as real files do:
    // Q8_0 (d = amax/127) has a code of +-127 in every block and never -128; Q4_0 (d = max/-8)
    // has a nibble 0 (the largest-magnitude element) in every block.
    case GgmlType.Q8_0:
      for (let i = 0; i < out.length; i += 34) {
        dv.setUint16(i, f32ToF16Bits(0.0004 + (dv.getUint16(i, true) / 65536) * 0.0002), true);
        for (let j = i + 2; j < i + 34; j++) if (out[j] === 0x80) out[j] = 0x81;
        const at = out[i + 2]! & 31;
        out[i + 2 + at] = out[i + 3]! & 1 ? 0x7f : 0x81;
      }
      return;
    case GgmlType.Q4_0:
      for (let i = 0; i < out.length; i += 18) {
        dv.setUint16(i, f32ToF16Bits(0.004 + (dv.getUint16(i, true) / 65536) * 0.002), true);
        const at = i + 2 + (out[i + 2]! & 15);
        out[at] = out[at]! & 0xf0;
      }
      return;
    default:
      throw new GgufFormatError("GGUF_UNSUPPORTED_TYPE", "random model type", undefined, `cannot generate ${ggmlTypeName(type)} (supported: F16, Q8_0, Q4_0)`);
  }
}

export interface RandomModelOptions extends WriteOptions {
  readonly type: GgmlType;
  readonly dims?: Partial<LlamaDims>;
  readonly seed?: number;
}

/** Bytes a random model with these dims and type will have (data only, close to the file size). */
export function randomModelDataBytes(d: LlamaDims, type: GgmlType): number {
  let total = 0;
  for (const t of llamaTensorShapes(d, BYTE_VOCAB.size)) {
    total += (t.matrix ? rowBytes(type, t.ne[0]!) : t.ne[0]! * 4) * (t.ne[1] ?? 1);
  }
  return total;
}

/** Pick the layer count that brings the default dims closest to `bytes`. */
export function dimsForSize(bytes: number, type: GgmlType, base: LlamaDims = DEFAULT_DIMS): LlamaDims {
  const one = randomModelDataBytes({ ...base, nLayer: 1 }, type);
  const two = randomModelDataBytes({ ...base, nLayer: 2 }, type);
  const perLayer = two - one;
  return { ...base, nLayer: Math.max(1, Math.round((bytes - (one - perLayer)) / perLayer)) };
}

export async function writeRandomLlamaModel(path: string, options: RandomModelOptions): Promise<GgufHeader> {
  const d: LlamaDims = { ...DEFAULT_DIMS, ...options.dims };
  const type = options.type;
  if (!RANDOM_MODEL_TYPES.includes(type as (typeof RANDOM_MODEL_TYPES)[number])) {
    throw new GgufFormatError("GGUF_UNSUPPORTED_TYPE", "random model type", undefined, `cannot generate ${ggmlTypeName(type)} (supported: F16, Q8_0, Q4_0)`);
  }
  const shapes = llamaTensorShapes(d, BYTE_VOCAB.size);
  const specs = shapes.map((t) => ({ name: t.name, ne: t.ne, type: t.matrix ? type : GgmlType.F32 }));
  const metadata = llamaMetadata(d, `random-${ggmlTypeName(type).toLowerCase()}-${d.nLayer}L`, FILE_TYPE[type]!);
  const rng = new Xoshiro128(options.seed ?? 1);
  const chunk = new Uint8Array(8 << 20);
  return writeGgufStream(
    path,
    metadata,
    specs,
    function* (t, i) {
      if (!shapes[i]!.matrix) {
        // Norm weights: 1.0, as a freshly initialised RMSNorm.
        const ones = new Float32Array(t.byteLength / 4).fill(1);
        yield new Uint8Array(ones.buffer);
        return;
      }
      const rb = rowBytes(type, t.ne[0]!);
      const rowsPerChunk = Math.max(1, Math.floor(chunk.length / rb));
      const rows = t.byteLength / rb;
      for (let r = 0; r < rows; r += rowsPerChunk) {
        const view = chunk.subarray(0, Math.min(rowsPerChunk, rows - r) * rb);
        fillRandomRows(type, view, rng);
        yield view;
      }
    },
    options,
  );
}
