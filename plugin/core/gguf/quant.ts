/**
 * Reference encoders and decoders for the types our fixtures and generators write: F32, F16,
 * BF16, Q8_0 and Q4_0. They follow ggml-quants.c's reference (non-SIMD) quantizers bit for bit,
 * so the bytes match what llama.cpp's own converters would produce.
 */
import { GgufFormatError } from "../../errors.js";
import { GgmlType, ggmlTypeName } from "./constants.js";

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** IEEE 754 binary32 -> binary16 bits, round to nearest even (as ggml's FP32_TO_FP16). */
export function f32ToF16Bits(f: number): number {
  f32buf[0] = f;
  const x = u32buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** binary32 -> bfloat16 bits, round to nearest even; NaN stays quiet NaN (ggml_compute_fp32_to_bf16). */
export function f32ToBf16Bits(f: number): number {
  f32buf[0] = f;
  const u = u32buf[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 64) & 0xffff;
  return ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16) & 0xffff;
}

export function bf16BitsToF32(b: number): number {
  u32buf[0] = (b << 16) >>> 0;
  return f32buf[0]!;
}

const QK = 32;

function checkShape(type: GgmlType, n: number, ne0: number, block: number): void {
  if (ne0 % block !== 0 || n % ne0 !== 0) {
    throw new GgufFormatError("GGUF_PARTIAL_BLOCK", `${ggmlTypeName(type)} data`, undefined, `${n} values with rows of ${ne0} are not whole blocks of ${block}`);
  }
}

/** Encode row-major F32 values (rows of ne0) as ggml type `type`. */
export function encodeTensorData(type: GgmlType, values: Float32Array, ne0: number): Uint8Array {
  const n = values.length;
  switch (type) {
    case GgmlType.F32: {
      checkShape(type, n, ne0, 1);
      const out = new Uint8Array(n * 4);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, values[i]!, true);
      return out;
    }
    case GgmlType.F16:
    case GgmlType.BF16: {
      checkShape(type, n, ne0, 1);
      const out = new Uint8Array(n * 2);
      const dv = new DataView(out.buffer);
      const conv = type === GgmlType.F16 ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, conv(values[i]!), true);
      return out;
    }
    case GgmlType.Q8_0: {
      checkShape(type, n, ne0, QK);
      const nb = n / QK;
      const out = new Uint8Array(nb * 34);
      const dv = new DataView(out.buffer);
      for (let b = 0; b < nb; b++) {
        let amax = 0;
        for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(values[b * QK + j]!));
        const d = Math.fround(amax / 127);
        const id = d ? Math.fround(1 / d) : 0;
        dv.setUint16(b * 34, f32ToF16Bits(d), true);
        for (let j = 0; j < QK; j++) {
          // roundf: half away from zero
          const x = Math.fround(values[b * QK + j]! * id);
          dv.setInt8(b * 34 + 2 + j, Math.sign(x) * Math.round(Math.abs(x)));
        }
      }
      return out;
    }
    case GgmlType.Q4_0: {
      checkShape(type, n, ne0, QK);
      const nb = n / QK;
      const out = new Uint8Array(nb * 18);
      const dv = new DataView(out.buffer);
      for (let b = 0; b < nb; b++) {
        let amax = 0;
        let max = 0;
        for (let j = 0; j < QK; j++) {
          const v = values[b * QK + j]!;
          if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
        }
        const d = Math.fround(max / -8);
        const id = d ? Math.fround(1 / d) : 0;
        dv.setUint16(b * 18, f32ToF16Bits(d), true);
        for (let j = 0; j < QK / 2; j++) {
          const x0 = Math.fround(values[b * QK + j]! * id);
          const x1 = Math.fround(values[b * QK + QK / 2 + j]! * id);
          const xi0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)));
          const xi1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)));
          out[b * 18 + 2 + j] = xi0 | (xi1 << 4);
        }
      }
      return out;
    }
    default:
      throw new GgufFormatError("GGUF_UNSUPPORTED_TYPE", "encodeTensorData", undefined, `no encoder for ${ggmlTypeName(type)} (supported: F32, F16, BF16, Q8_0, Q4_0)`);
  }
}

/** Decode nElements values of ggml type `type` to F32. */
export function decodeTensorData(type: GgmlType, bytes: Uint8Array, nElements: number): Float32Array {
  const out = new Float32Array(nElements);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case GgmlType.F32:
      for (let i = 0; i < nElements; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case GgmlType.F16:
      for (let i = 0; i < nElements; i++) out[i] = f16BitsToF32(dv.getUint16(i * 2, true));
      return out;
    case GgmlType.BF16:
      for (let i = 0; i < nElements; i++) out[i] = bf16BitsToF32(dv.getUint16(i * 2, true));
      return out;
    case GgmlType.Q8_0:
      for (let b = 0; b < nElements / QK; b++) {
        const d = f16BitsToF32(dv.getUint16(b * 34, true));
        for (let j = 0; j < QK; j++) out[b * QK + j] = d * dv.getInt8(b * 34 + 2 + j);
      }
      return out;
    case GgmlType.Q4_0:
      for (let b = 0; b < nElements / QK; b++) {
        const d = f16BitsToF32(dv.getUint16(b * 18, true));
        for (let j = 0; j < QK / 2; j++) {
          const q = bytes[b * 18 + 2 + j]!;
          out[b * QK + j] = ((q & 0x0f) - 8) * d;
          out[b * QK + QK / 2 + j] = ((q >> 4) - 8) * d;
        }
      }
      return out;
    case GgmlType.Q5_0:
      // ggml's dequantize_row_q5_0: d (f16), qh (32 high bits, little-endian), 16 bytes of nibbles.
      for (let b = 0; b < nElements / QK; b++) {
        const o = b * 22;
        const d = f16BitsToF32(dv.getUint16(o, true));
        const qh = dv.getUint32(o + 2, true);
        for (let j = 0; j < QK / 2; j++) {
          const q = bytes[o + 6 + j]!;
          const h0 = ((qh >>> j) << 4) & 0x10;
          const h1 = (qh >>> (j + 12)) & 0x10;
          out[b * QK + j] = (((q & 0x0f) | h0) - 16) * d;
          out[b * QK + QK / 2 + j] = (((q >> 4) | h1) - 16) * d;
        }
      }
      return out;
    default:
      throw new GgufFormatError("GGUF_UNSUPPORTED_TYPE", "decodeTensorData", undefined, `no decoder for ${ggmlTypeName(type)}`);
  }
}
