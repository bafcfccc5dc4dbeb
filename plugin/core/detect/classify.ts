/**
 * Decrypted-neuron detection: decide from a row's bytes alone whether it holds real weights or
 * ciphertext (uniformly random bytes). Pure and allocation-free per call. See docs/detection.md
 * for the tests, the thresholds and their false-positive / false-negative math.
 *
 * One idea for every type: real weights occupy a narrow band of binary orders of magnitude
 * ("octaves"); random bits spread their exponents uniformly over the whole range and hit NaN/Inf.
 * - F32/BF16/F16: the units are the elements; a unit is "in" if it is zero or falls in the densest
 *   window of W consecutive exponents; NaN/Inf are always "out".
 * - block-quantized types: the units are the blocks' scale fields (fp16 d, dmin, m; e8m0 for
 *   MXFP4), one window per field; a scale is also "out" if non-finite, negative where the
 *   quantizer only writes values >= 0, or too large for weights below 256 in magnitude.
 * A row is ENCRYPTED when more than a quarter of its units are out. Rows with fewer than
 * TIER2_MAX_BLOCKS blocks of Q8_0/Q4_0/Q6_K also get llama.cpp's quantizer invariants checked.
 * Types without a known layout get a byte chi-square backstop.
 */
import { GgmlType, ggmlTypeName } from "../gguf/constants.js";
import { BLOCK_LAYOUTS, type BlockLayout } from "./layouts.js";

export type RowState = "plain" | "encrypted" | "zeroed";

export interface RowVerdict {
  /** True when the bytes look like ciphertext (the row should be zeroed). */
  readonly encrypted: boolean;
  readonly state: RowState;
  /** Fraction of units that are inconsistent with real weights (0: weights-like, ~0.75-1: random). */
  readonly score: number;
  readonly reason: string;
}

/** Window widths, in octaves, for element exponents and for block scales. */
export const FLOAT_WINDOW: Readonly<Record<"F16" | "BF16" | "F32", number>> = { F16: 8, BF16: 12, F32: 12 };
export const SCALE_WINDOW = 8;
/** A row is encrypted when out-units > units * OUT_FRACTION. */
export const OUT_FRACTION = 0.25;
/** Below this many blocks, Q8_0/Q4_0 rows are also checked against quantizer invariants. */
export const TIER2_MAX_BLOCKS = 32;
/** Chi-square (255 d.o.f.) ceiling for the byte backstop: mean 255, sd 22.6; 436 is +8 sd. */
export const CHI2_RANDOM_MAX = 436;
export const CHI2_MIN_BYTES = 512;

// ---- lookup tables: 16 bits -> octave bin (0: zero, 1..: biased exponent + 1, last: NaN/Inf) ----
export const F16_BAD = 32;
export const BF16_BAD = 256;
const F16_BIN = new Uint8Array(65536);
const BF16_BIN = new Uint16Array(65536);
for (let h = 0; h < 65536; h++) {
  const e16 = (h >>> 10) & 31;
  F16_BIN[h] = (h & 0x7fff) === 0 ? 0 : e16 === 31 ? F16_BAD : e16 + 1;
  const e8 = (h >>> 7) & 0xff;
  BF16_BIN[h] = (h & 0x7fff) === 0 ? 0 : e8 === 255 ? BF16_BAD : e8 + 1;
}

const hist = new Int32Array(257);

/** Largest sum of `w` consecutive bins in hist[lo..hi] (inclusive). */
function maxWindow(h: Int32Array, lo: number, hi: number, w: number): number {
  if (hi < lo) return 0;
  let sum = 0;
  const end0 = Math.min(hi, lo + w - 1);
  for (let i = lo; i <= end0; i++) sum += h[i]!;
  let best = sum;
  for (let i = end0 + 1; i <= hi; i++) {
    sum += h[i]! - h[i - w]!;
    if (sum > best) best = sum;
  }
  return best;
}

function isAllZero(bytes: Uint8Array): boolean {
  const n = bytes.length;
  let i = 0;
  if ((bytes.byteOffset & 3) === 0) {
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset, n >>> 2);
    let acc = 0;
    for (let j = 0; j < w.length; j++) acc |= w[j]!;
    if (acc !== 0) return false;
    i = w.length * 4;
  }
  let acc = 0;
  for (; i < n; i++) acc |= bytes[i]!;
  return acc === 0;
}

const ZEROED: RowVerdict = { encrypted: false, state: "zeroed", score: 0, reason: "all bytes zero" };

/** Verdict whose human-readable reason is built only when read (the scan reads it rarely). */
class UnitVerdict implements RowVerdict {
  readonly encrypted: boolean;
  readonly state: RowState;
  readonly score: number;
  constructor(readonly out: number, readonly units: number, private readonly what: string, private readonly extra: () => string) {
    this.score = units > 0 ? out / units : 0;
    this.encrypted = out > units * OUT_FRACTION;
    this.state = this.encrypted ? "encrypted" : "plain";
  }
  get reason(): string {
    return `${this.out}/${this.units} ${this.what} outside the weights band${this.extra()}`;
  }
}

const NO_EXTRA = (): string => "";

function verdict(out: number, units: number, what: string, extra: () => string = NO_EXTRA): UnitVerdict {
  return new UnitVerdict(out, units, what, extra);
}

function u16View(bytes: Uint8Array): Uint16Array {
  if ((bytes.byteOffset & 1) === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 1);
  return new Uint16Array(bytes.slice().buffer, 0, bytes.length >>> 1);
}

function classifyF16(bytes: Uint8Array): RowVerdict {
  const u = u16View(bytes);
  const n = u.length;
  hist.fill(0, 0, F16_BAD + 1);
  for (let i = 0; i < n; i++) hist[F16_BIN[u[i]!]!]!++;
  const zeros = hist[0]!;
  if (zeros === n) return isAllZero(bytes) ? ZEROED : verdict(0, n, "elements");
  const inBand = maxWindow(hist, 1, F16_BAD - 1, FLOAT_WINDOW.F16);
  const nonFinite = hist[F16_BAD]!;
  return verdict(n - zeros - inBand, n, "elements", () => `; ${nonFinite} NaN/Inf`);
}

/** BF16 (stride 1) or F32 (stride 2: the high half of each little-endian word). */
function classifyWide(bytes: Uint8Array, f32: boolean): RowVerdict {
  const u = u16View(bytes);
  hist.fill(0, 0, BF16_BAD + 1);
  let n: number;
  if (f32) {
    n = u.length >>> 1;
    for (let i = 1; i < u.length; i += 2) hist[BF16_BIN[u[i]!]!]!++;
  } else {
    n = u.length;
    for (let i = 0; i < n; i++) hist[BF16_BIN[u[i]!]!]!++;
  }
  const zeros = hist[0]!;
  if (zeros === n) return isAllZero(bytes) ? ZEROED : verdict(0, n, "elements", () => " (only values below 2^-133)");
  const inBand = maxWindow(hist, 1, BF16_BAD - 1, f32 ? FLOAT_WINDOW.F32 : FLOAT_WINDOW.BF16);
  const nonFinite = hist[BF16_BAD]!;
  return verdict(n - zeros - inBand, n, "elements", () => `; ${nonFinite} NaN/Inf`);
}

/** IQ1_M keeps its fp16 d in the top nibble of each of the four u16 scale words (ggml-quants.c). */
function iq1mScale(bytes: Uint8Array, o: number): number {
  const s0 = bytes[o]! | (bytes[o + 1]! << 8);
  const s1 = bytes[o + 2]! | (bytes[o + 3]! << 8);
  const s2 = bytes[o + 4]! | (bytes[o + 5]! << 8);
  const s3 = bytes[o + 6]! | (bytes[o + 7]! << 8);
  return (s0 >>> 12) | ((s1 >>> 8) & 0x00f0) | ((s2 >>> 4) & 0x0f00) | (s3 & 0xf000);
}

/** Scale-field test for block-quantized types. */
function classifyBlocks(type: GgmlType, layout: BlockLayout, bytes: Uint8Array): RowVerdict {
  const nb = Math.floor(bytes.length / layout.blockBytes);
  const B = layout.blockBytes;
  let out = 0;
  let units = 0;
  let zeroUnits = 0;
  let bad = 0;
  for (const f of layout.fields) {
    hist.fill(0, 0, BF16_BAD + 1);
    let cap: number; // highest allowed bin
    let lastBin: number;
    if (f.kind === "f16" || f.kind === "iq1m") { cap = Math.min(F16_BAD - 1, 15 + f.maxLog2); lastBin = F16_BAD; }
    else if (f.kind === "f32") { cap = Math.min(BF16_BAD - 1, 127 + f.maxLog2); lastBin = BF16_BAD; }
    else { cap = Math.min(255, 127 + f.maxLog2); lastBin = 256; }
    let fieldBad = 0;
    for (let b = 0, o = f.offset; b < nb; b++, o += B) {
      let bin: number;
      let neg: boolean;
      if (f.kind === "f16" || f.kind === "iq1m") {
        const h = f.kind === "f16" ? bytes[o]! | (bytes[o + 1]! << 8) : iq1mScale(bytes, o);
        bin = F16_BIN[h]!;
        neg = (h & 0x8000) !== 0;
      } else if (f.kind === "f32") {
        const h = bytes[o + 2]! | (bytes[o + 3]! << 8);
        bin = BF16_BIN[h]!;
        neg = (h & 0x8000) !== 0;
      } else {
        const e = bytes[o]!;
        bin = e === 255 ? 256 : e + 1; // e8m0 has no zero: 0 encodes 2^-127
        neg = false;
      }
      if (bin === 0) { hist[0]!++; continue; }
      if (bin >= lastBin || bin > cap || (neg && f.nonNegative)) { fieldBad++; continue; }
      hist[bin]!++;
    }
    const z = hist[0]!;
    const inBand = maxWindow(hist, 1, cap, SCALE_WINDOW);
    out += nb - z - inBand;
    bad += fieldBad;
    units += nb;
    zeroUnits += z;
  }
  if (zeroUnits === units && isAllZero(bytes)) return ZEROED;
  const v = verdict(out, units, `${ggmlTypeName(type)} scales`, () => `; ${bad} non-finite/negative/oversized`);
  if (v.encrypted || nb >= TIER2_MAX_BLOCKS) return v;
  const broken = tier2(type, bytes, nb);
  if (broken < 0) return v;
  return { encrypted: true, state: "encrypted", score: Math.max(v.score, 0.5), reason: `${v.reason}; short row: block ${broken} breaks llama.cpp's ${ggmlTypeName(type)} quantizer invariants` };
}

/**
 * Q6_K: the sub-scale of largest magnitude is stored as -128 (ref and imatrix paths).
 * Quantizer invariants of llama.cpp / gguf-py reference quantizers, used only for short rows.
 * Q8_0: d = amax/127, q = round(x*127/amax): q is never -128 and a block with any q != 0 has a +-127
 * (d itself may underflow to 0 in fp16). Q4_0: d = max/-8: the largest-magnitude element maps to nibble 0.
 * Returns the first block that breaks them, or -1.
 */
function tier2(type: GgmlType, bytes: Uint8Array, nb: number): number {
  if (type === GgmlType.Q8_0) {
    for (let b = 0; b < nb; b++) {
      const o = b * 34;
      let has127 = false;
      let any = 0;
      for (let j = o + 2; j < o + 34; j++) {
        const q = bytes[j]!;
        if (q === 0x80) return b;
        if (q === 0x7f || q === 0x81) has127 = true;
        any |= q;
      }
      if (any !== 0 && !has127) return b;
    }
  } else if (type === GgmlType.Q4_0) {
    for (let b = 0; b < nb; b++) {
      const o = b * 18;
      if (((bytes[o]! | (bytes[o + 1]! << 8)) & 0x7fff) === 0) continue;
      let has0 = false;
      for (let j = o + 2; j < o + 18; j++) {
        const q = bytes[j]!;
        if ((q & 0x0f) === 0 || (q & 0xf0) === 0) { has0 = true; break; }
      }
      if (!has0) return b;
    }
  } else if (type === GgmlType.Q6_K) {
    // d = max_scale/-128: the sub-block scale of largest magnitude is stored as -128 (0x80).
    for (let b = 0; b < nb; b++) {
      const o = b * 210;
      if (((bytes[o + 208]! | (bytes[o + 209]! << 8)) & 0x7fff) === 0) continue;
      let has80 = false;
      for (let j = o + 192; j < o + 208; j++) if (bytes[j] === 0x80) { has80 = true; break; }
      if (!has80) return b;
    }
  }
  return -1;
}

const byteHist = new Int32Array(256);

/** Byte-level backstop: chi-square of the byte histogram against uniform. */
export function chiSquareBytes(bytes: Uint8Array): number {
  byteHist.fill(0);
  for (let i = 0; i < bytes.length; i++) byteHist[bytes[i]!]!++;
  const e = bytes.length / 256;
  let chi = 0;
  for (let i = 0; i < 256; i++) {
    const d = byteHist[i]! - e;
    chi += d * d;
  }
  return chi / e;
}

function classifyBytes(type: GgmlType, bytes: Uint8Array): RowVerdict {
  if (isAllZero(bytes)) return ZEROED;
  if (bytes.length < CHI2_MIN_BYTES) {
    return { encrypted: false, state: "plain", score: 0, reason: `${ggmlTypeName(type)}: no scale layout and ${bytes.length} bytes is too short for the byte test` };
  }
  const chi = chiSquareBytes(bytes);
  const encrypted = chi <= CHI2_RANDOM_MAX;
  return { encrypted, state: encrypted ? "encrypted" : "plain", score: encrypted ? 1 : 0, reason: `${ggmlTypeName(type)}: byte chi-square ${chi.toFixed(1)} (uniform <= ${CHI2_RANDOM_MAX})` };
}

/** Classify one row of `type` (whole blocks) as real weights, ciphertext or zeroed. */
export function classifyRow(type: GgmlType, bytes: Uint8Array): RowVerdict {
  if (bytes.length === 0) return ZEROED;
  switch (type) {
    case GgmlType.F16:
      return classifyF16(bytes);
    case GgmlType.BF16:
      return classifyWide(bytes, false);
    case GgmlType.F32:
      return classifyWide(bytes, true);
    default: {
      const layout = BLOCK_LAYOUTS.get(type);
      if (layout) return classifyBlocks(type, layout, bytes);
      return classifyBytes(type, bytes);
    }
  }
}

/** Cheap boolean form for scans. */
export function looksEncrypted(type: GgmlType, bytes: Uint8Array): boolean {
  return classifyRow(type, bytes).encrypted;
}
