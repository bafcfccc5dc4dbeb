/**
 * Where the scale fields of each block-quantized ggml type live (ggml-common.h block_* structs),
 * and what llama.cpp's quantizers guarantee about them. Pure data: the detector reads it.
 */
import { GgmlType } from "../gguf/constants.js";

/** iq1m: fp16 d split over the top nibbles of the four u16 scale words at `offset`. */
export type ScaleKind = "f16" | "f32" | "e8m0" | "iq1m";

export interface ScaleField {
  /** Byte offset of the field inside the block. */
  readonly offset: number;
  readonly kind: ScaleKind;
  /** The quantizer only ever writes a value >= 0 here (e.g. Q8_0 d = amax/127). */
  readonly nonNegative: boolean;
  /** Largest plausible |value| as a power of two: |v| < 2^maxLog2 for weights with |w| < 256. */
  readonly maxLog2: number;
  readonly name: string;
}

export interface BlockLayout {
  readonly blockBytes: number;
  readonly blockSize: number;
  readonly fields: readonly ScaleField[];
}

const f16 = (offset: number, name: string, nonNegative: boolean, maxLog2: number): ScaleField => ({ offset, kind: "f16", nonNegative, maxLog2, name });

/**
 * maxLog2 is derived from the dequantization formula with |w| < 256 (far above any FFN weight):
 * Q8_0 w = d*q, |q| <= 127 -> |d| < 2^1; Q4_0 w = d*(q-8) -> |d| < 2^5 (amax/8 = 32); Q4_K
 * w = d*sc*q - dmin*m, sc,m <= 63, q <= 15 -> d < 2^0, dmin < 2^3; and so on. A bound looser than
 * the exact one only weakens the test a little; a bound tighter than real data would cause false
 * positives, so every bound below is rounded up.
 */
export const BLOCK_LAYOUTS: ReadonlyMap<number, BlockLayout> = new Map<number, BlockLayout>([
  [GgmlType.Q4_0, { blockBytes: 18, blockSize: 32, fields: [f16(0, "d", false, 6)] }],
  [GgmlType.Q4_1, { blockBytes: 20, blockSize: 32, fields: [f16(0, "d", true, 6), f16(2, "m", false, 8)] }],
  [GgmlType.Q5_0, { blockBytes: 22, blockSize: 32, fields: [f16(0, "d", false, 5)] }],
  [GgmlType.Q5_1, { blockBytes: 24, blockSize: 32, fields: [f16(0, "d", true, 5), f16(2, "m", false, 8)] }],
  [GgmlType.Q8_0, { blockBytes: 34, blockSize: 32, fields: [f16(0, "d", true, 2)] }],
  [GgmlType.Q8_1, { blockBytes: 36, blockSize: 32, fields: [f16(0, "d", true, 2)] }],
  [GgmlType.Q2_K, { blockBytes: 84, blockSize: 256, fields: [f16(80, "d", true, 3), f16(82, "dmin", true, 5)] }],
  [GgmlType.Q3_K, { blockBytes: 110, blockSize: 256, fields: [f16(108, "d", false, 2)] }],
  [GgmlType.Q4_K, { blockBytes: 144, blockSize: 256, fields: [f16(0, "d", true, 1), f16(2, "dmin", true, 3)] }],
  [GgmlType.Q5_K, { blockBytes: 176, blockSize: 256, fields: [f16(0, "d", true, 0), f16(2, "dmin", true, 3)] }],
  [GgmlType.Q6_K, { blockBytes: 210, blockSize: 256, fields: [f16(208, "d", false, 0)] }],
  [GgmlType.Q8_K, { blockBytes: 292, blockSize: 256, fields: [{ offset: 0, kind: "f32", nonNegative: false, maxLog2: 2, name: "d" }] }],
  [GgmlType.IQ2_XXS, { blockBytes: 66, blockSize: 256, fields: [f16(0, "d", false, 4)] }],
  [GgmlType.IQ2_XS, { blockBytes: 74, blockSize: 256, fields: [f16(0, "d", false, 4)] }],
  [GgmlType.IQ3_XXS, { blockBytes: 98, blockSize: 256, fields: [f16(0, "d", false, 4)] }],
  [GgmlType.IQ1_S, { blockBytes: 50, blockSize: 256, fields: [f16(0, "d", false, 8)] }],
  [GgmlType.IQ4_NL, { blockBytes: 18, blockSize: 32, fields: [f16(0, "d", false, 4)] }],
  [GgmlType.IQ3_S, { blockBytes: 110, blockSize: 256, fields: [f16(0, "d", false, 4)] }],
  [GgmlType.IQ2_S, { blockBytes: 82, blockSize: 256, fields: [f16(0, "d", false, 4)] }],
  [GgmlType.IQ4_XS, { blockBytes: 136, blockSize: 256, fields: [f16(0, "d", false, 4)] }],
  [GgmlType.IQ1_M, { blockBytes: 56, blockSize: 256, fields: [{ offset: 48, kind: "iq1m", nonNegative: false, maxLog2: 8, name: "d" }] }],
  [GgmlType.TQ1_0, { blockBytes: 54, blockSize: 256, fields: [f16(52, "d", false, 8)] }],
  [GgmlType.TQ2_0, { blockBytes: 66, blockSize: 256, fields: [f16(64, "d", false, 8)] }],
  // MXFP4: e8m0 shared exponent, w = 2^(e-127) * fp4 (|fp4| <= 6): |w| < 256 -> e - 127 < 6.
  [GgmlType.MXFP4, { blockBytes: 17, blockSize: 32, fields: [{ offset: 0, kind: "e8m0", nonNegative: true, maxLog2: 6, name: "e" }] }],
]);
