/**
 * GGUF serializer. Writing is staged (header -> metadata -> tensor infos -> padding -> data):
 * this module produces the bytes up to the data section and the layout of the data; the edge
 * (plugin/edges/gguf-file.ts) streams tensor data after it, so files of any size go through in
 * bounded memory. Tensors are laid out back to back, each padded to the alignment, exactly as
 * the reader and llama.cpp require.
 */
import { GgufFormatError } from "../../errors.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_LIMITS, GGUF_MAGIC, GGUF_VERSION, GgufValueType } from "./constants.js";
import { alignUp, rowBytes } from "./rows.js";
import type { GgufHeader, GgufMetadata, GgufTensorInfo, GgufValue } from "./types.js";

export interface TensorSpec {
  readonly name: string;
  readonly ne: readonly number[];
  readonly type: number;
}

export interface GgufLayout {
  /** Header bytes, padded so that the data section starts right after them. */
  readonly headerBytes: Uint8Array;
  /** The header as a reader would parse it from the finished file. */
  readonly header: GgufHeader;
}

const enc = new TextEncoder();
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Growable little-endian byte buffer. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.grow(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.grow(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.grow(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.grow(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.grow(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.grow(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.grow(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.grow(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: bigint): void { this.grow(8); this.view.setBigUint64(this.length, v, true); this.length += 8; }
  i64(v: bigint): void { this.grow(8); this.view.setBigInt64(this.length, v, true); this.length += 8; }
  bytes(b: Uint8Array): void { this.grow(b.length); this.buf.set(b, this.length); this.length += b.length; }
  string(s: string): void { const b = enc.encode(s); this.u64(BigInt(b.length)); this.bytes(b); }
  padTo(alignment: number): void { const n = alignUp(this.length, alignment) - this.length; this.grow(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  result(): Uint8Array { return this.buf.slice(0, this.length); }
}

function writeScalar(w: ByteWriter, type: GgufValueType, v: unknown, key: string): void {
  const bad = (): never => {
    throw new GgufFormatError("GGUF_BAD_VALUE", key, undefined, `value ${String(v)} does not fit value type ${type}`);
  };
  const int = (lo: number, hi: number): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) bad();
    return v as number;
  };
  switch (type) {
    case GgufValueType.UINT8: return w.u8(int(0, 0xff));
    case GgufValueType.INT8: return w.i8(int(-0x80, 0x7f));
    case GgufValueType.UINT16: return w.u16(int(0, 0xffff));
    case GgufValueType.INT16: return w.i16(int(-0x8000, 0x7fff));
    case GgufValueType.UINT32: return w.u32(int(0, 0xffffffff));
    case GgufValueType.INT32: return w.i32(int(-0x80000000, 0x7fffffff));
    case GgufValueType.FLOAT32: if (typeof v !== "number") bad(); return w.f32(v as number);
    case GgufValueType.FLOAT64: if (typeof v !== "number") bad(); return w.f64(v as number);
    case GgufValueType.UINT64: if (typeof v !== "bigint" || v < 0n || v >= 1n << 64n) bad(); return w.u64(v as bigint);
    case GgufValueType.INT64: if (typeof v !== "bigint" || v < -(1n << 63n) || v >= 1n << 63n) bad(); return w.i64(v as bigint);
    case GgufValueType.BOOL: if (typeof v !== "boolean") bad(); return w.u8(v ? 1 : 0);
    case GgufValueType.STRING: if (typeof v !== "string") bad(); return w.string(v as string);
    default: bad();
  }
}

function writeValue(w: ByteWriter, key: string, value: GgufValue): void {
  w.u32(value.type);
  if (value.type === GgufValueType.ARRAY) {
    if (value.itemType === GgufValueType.ARRAY) {
      throw new GgufFormatError("GGUF_NESTED_ARRAY", key, undefined, "nested arrays are not supported by llama.cpp");
    }
    w.u32(value.itemType);
    w.u64(BigInt(value.value.length));
    for (const item of value.value) writeScalar(w, value.itemType, item, key);
    return;
  }
  writeScalar(w, value.type, value.value, key);
}

/**
 * Lay out a GGUF file: serialize everything before the data section and compute each tensor's
 * offset. Rejects what the reader would reject (bad names, shapes, partial blocks, alignment).
 */
export function layoutGguf(metadata: GgufMetadata, tensors: readonly TensorSpec[]): GgufLayout {
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const a = metadata.get("general.alignment");
  if (a) {
    if (a.type !== GgufValueType.UINT32 || a.value === 0 || (a.value & (a.value - 1)) !== 0 || a.value > GGUF_LIMITS.maxAlignment) {
      throw new GgufFormatError("GGUF_BAD_ALIGNMENT", "general.alignment", undefined, "must be a u32 power of two");
    }
    alignment = a.value;
  }
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(BigInt(tensors.length));
  w.u64(BigInt(metadata.size));
  for (const [key, value] of metadata) {
    if (key.length === 0) throw new GgufFormatError("GGUF_EMPTY_KEY", "metadata", undefined, "empty key");
    if (CONTROL_CHARS.test(key)) throw new GgufFormatError("GGUF_BAD_KEY", key, undefined, "key contains a NUL or control character");
    w.string(key);
    writeValue(w, key, value);
  }
  const infos: Array<Omit<GgufTensorInfo, "infoOffset"> & { infoOffset: number }> = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    const field = `tensor '${t.name}'`;
    const nameBytes = enc.encode(t.name).length;
    if (nameBytes === 0 || nameBytes >= GGUF_LIMITS.maxTensorNameLength || CONTROL_CHARS.test(t.name)) {
      throw new GgufFormatError("GGUF_TENSOR_NAME", field, undefined, `name must be 1..${GGUF_LIMITS.maxTensorNameLength - 1} bytes`);
    }
    if (names.has(t.name)) throw new GgufFormatError("GGUF_DUPLICATE_TENSOR", field, undefined, "duplicate tensor name");
    names.add(t.name);
    if (t.ne.length < 1 || t.ne.length > GGUF_LIMITS.maxDims || t.ne.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
      throw new GgufFormatError("GGUF_BAD_SHAPE", `${field} ne`, undefined, `bad shape [${t.ne.join(", ")}]`);
    }
    const rb = rowBytes(t.type, t.ne[0]!);
    let rows = 1;
    for (let i = 1; i < t.ne.length; i++) rows *= t.ne[i]!;
    const byteLength = rb * rows;
    if (!Number.isSafeInteger(byteLength)) throw new GgufFormatError("GGUF_SIZE_OVERFLOW", field, undefined, "size overflows");
    const infoOffset = w.length;
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(BigInt(d));
    w.u32(t.type);
    w.u64(BigInt(offset));
    infos.push({ name: t.name, ne: [...t.ne], type: t.type, offset, byteLength, infoOffset });
    offset += alignUp(byteLength, alignment);
  }
  w.padTo(alignment);
  const headerBytes = w.result();
  const dataOffset = headerBytes.length;
  const last = infos[infos.length - 1];
  const fileSize = last ? dataOffset + last.offset + alignUp(last.byteLength, alignment) : dataOffset;
  return {
    headerBytes,
    header: { version: GGUF_VERSION, metadata, tensors: infos, alignment, dataOffset, dataLength: offset, fileSize },
  };
}
