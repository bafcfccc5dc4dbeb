/**
 * Row geometry: where row r of a tensor lives in the file. A row is ne[0] elements, stored as
 * whole quantization blocks (the reader guarantees ne[0] % blockSize == 0).
 */
import { GgufFormatError } from "../../errors.js";
import { GGML_TYPES, type GgmlTypeTraits } from "./constants.js";
import type { GgufHeader, GgufTensorInfo } from "./types.js";

export function typeTraits(type: number, field = "tensor type", offset?: number): GgmlTypeTraits {
  const t = GGML_TYPES.get(type);
  if (!t) throw new GgufFormatError("GGUF_UNKNOWN_TYPE", field, offset, `unknown ggml type ${type}`);
  return t;
}

/** Bytes in one row of ne0 elements of a type. Throws if ne0 is not whole blocks. */
export function rowBytes(type: number, ne0: number): number {
  const t = typeTraits(type);
  if (ne0 % t.blockSize !== 0) {
    throw new GgufFormatError(
      "GGUF_PARTIAL_BLOCK",
      "ne[0]",
      undefined,
      `${ne0} elements is not a whole number of ${t.name} blocks of ${t.blockSize}`,
    );
  }
  return (ne0 / t.blockSize) * t.typeSize;
}

export function tensorRowBytes(t: GgufTensorInfo): number {
  return rowBytes(t.type, t.ne[0]!);
}

export function tensorRowCount(t: GgufTensorInfo): number {
  let n = 1;
  for (let i = 1; i < t.ne.length; i++) n *= t.ne[i]!;
  return n;
}

export interface ByteRange {
  /** Absolute offset in the file. */
  readonly offset: number;
  readonly length: number;
}

/** Absolute byte range of row `row` of `tensor` in the file described by `header`. */
export function rowRange(header: GgufHeader, tensor: GgufTensorInfo, row: number): ByteRange {
  const rows = tensorRowCount(tensor);
  if (!Number.isInteger(row) || row < 0 || row >= rows) {
    throw new RangeError(`row ${row} out of range for ${tensor.name} (${rows} rows)`);
  }
  const len = tensorRowBytes(tensor);
  return { offset: header.dataOffset + tensor.offset + row * len, length: len };
}

/** Absolute byte range of a whole tensor's data. */
export function tensorRange(header: GgufHeader, tensor: GgufTensorInfo): ByteRange {
  return { offset: header.dataOffset + tensor.offset, length: tensor.byteLength };
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
