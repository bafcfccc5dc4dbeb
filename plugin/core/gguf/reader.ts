/**
 * GGUF header parser: magic, version, metadata and tensor infos, read from a byte source without
 * touching tensor data. It ports the checks of ggml's gguf.cpp (gguf_init_from_reader) one for
 * one and adds stricter ones (UTF-8 strings, 0/1 bools, no nested arrays, data inside the file).
 * Validation comes before allocation: every count and length is capped and checked against the
 * bytes left before anything is allocated for it.
 */
import { GgufFormatError } from "../../errors.js";
import { GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_LIMITS, GGUF_MAGIC, GgufValueType } from "./constants.js";
import type { SyncByteSource } from "./byte-source.js";
import type { GgufArrayValue, GgufHeader, GgufMetadata, GgufTensorInfo, GgufValue } from "./types.js";

const CHUNK = 1 << 20;
const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Buffered little-endian cursor over a SyncByteSource. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;
  constructor(private readonly src: SyncByteSource) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  /** Make n bytes at pos available, or fail naming the field being read. */
  private ensure(n: number, field: string): number {
    if (n > this.remaining) {
      throw new GgufFormatError(
        "GGUF_TRUNCATED",
        field,
        this.pos,
        `needs ${n} bytes but the file has ${Math.max(0, this.remaining)} left`,
      );
    }
    const rel = this.pos - this.bufStart;
    if (rel < 0 || rel + n > this.buf.length) {
      const want = Math.min(Math.max(n, CHUNK), this.remaining);
      const got = this.src.read(this.pos, want);
      if (got.length < n) {
        throw new GgufFormatError("GGUF_TRUNCATED", field, this.pos, `short read: wanted ${n} bytes, got ${got.length}`);
      }
      // Copy: a source may reuse its buffer between reads.
      this.buf = new Uint8Array(got); // a real copy (Buffer#slice would alias)
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      this.bufStart = this.pos;
      return 0;
    }
    return rel;
  }

  u8(field: string): number {
    const at = this.ensure(1, field);
    this.pos += 1;
    return this.view.getUint8(at);
  }
  u32(field: string): number {
    const at = this.ensure(4, field);
    this.pos += 4;
    return this.view.getUint32(at, true);
  }
  u64(field: string): bigint {
    const at = this.ensure(8, field);
    this.pos += 8;
    return this.view.getBigUint64(at, true);
  }
  scalar(type: GgufValueType, field: string): number | bigint | boolean {
    switch (type) {
      case GgufValueType.UINT8: { const a = this.ensure(1, field); this.pos += 1; return this.view.getUint8(a); }
      case GgufValueType.INT8: { const a = this.ensure(1, field); this.pos += 1; return this.view.getInt8(a); }
      case GgufValueType.UINT16: { const a = this.ensure(2, field); this.pos += 2; return this.view.getUint16(a, true); }
      case GgufValueType.INT16: { const a = this.ensure(2, field); this.pos += 2; return this.view.getInt16(a, true); }
      case GgufValueType.UINT32: { const a = this.ensure(4, field); this.pos += 4; return this.view.getUint32(a, true); }
      case GgufValueType.INT32: { const a = this.ensure(4, field); this.pos += 4; return this.view.getInt32(a, true); }
      case GgufValueType.FLOAT32: { const a = this.ensure(4, field); this.pos += 4; return this.view.getFloat32(a, true); }
      case GgufValueType.FLOAT64: { const a = this.ensure(8, field); this.pos += 8; return this.view.getFloat64(a, true); }
      case GgufValueType.UINT64: { const a = this.ensure(8, field); this.pos += 8; return this.view.getBigUint64(a, true); }
      case GgufValueType.INT64: { const a = this.ensure(8, field); this.pos += 8; return this.view.getBigInt64(a, true); }
      case GgufValueType.BOOL: {
        const start = this.pos;
        const a = this.ensure(1, field);
        this.pos += 1;
        const b = this.view.getUint8(a);
        if (b > 1) throw new GgufFormatError("GGUF_BAD_BOOL", field, start, `bool byte is ${b}, expected 0 or 1`);
        return b === 1;
      }
      default:
        throw new Error(`not a scalar type: ${type}`);
    }
  }
  string(field: string, maxLength: number = GGUF_LIMITS.maxStringLength): string {
    const start = this.pos;
    const len = this.u64(`${field} length`);
    if (len > BigInt(maxLength)) {
      throw new GgufFormatError("GGUF_STRING_TOO_LONG", field, start, `string length ${len} exceeds the limit ${maxLength}`);
    }
    const n = Number(len);
    const at = this.ensure(n, field);
    this.pos += n;
    try {
      return utf8.decode(this.buf.subarray(at, at + n));
    } catch {
      throw new GgufFormatError("GGUF_BAD_UTF8", field, start + 8, "string is not valid UTF-8");
    }
  }
}

function isScalarType(t: number): boolean {
  return t >= GgufValueType.UINT8 && t <= GgufValueType.FLOAT64 && t !== GgufValueType.STRING && t !== GgufValueType.ARRAY;
}

function readValue(c: Cursor, type: number, field: string, typeOffset: number): GgufValue {
  if (type === GgufValueType.STRING) return { type, value: c.string(field) };
  if (type === GgufValueType.ARRAY) return readArray(c, field);
  if (!isScalarType(type)) {
    throw new GgufFormatError("GGUF_BAD_VALUE_TYPE", field, typeOffset, `unknown value type ${type}`);
  }
  return { type, value: c.scalar(type, field) } as GgufValue;
}

function readArray(c: Cursor, field: string): GgufArrayValue {
  const typeAt = c.pos;
  const itemType = c.u32(`${field} array type`);
  const countAt = c.pos;
  const count64 = c.u64(`${field} array count`);
  if (itemType === GgufValueType.ARRAY) {
    // gguf.cpp has no reader for nested arrays: llama.cpp rejects them, so do we.
    throw new GgufFormatError("GGUF_NESTED_ARRAY", field, typeAt, "nested arrays are not supported by llama.cpp");
  }
  if (itemType !== GgufValueType.STRING && !isScalarType(itemType)) {
    throw new GgufFormatError("GGUF_BAD_VALUE_TYPE", field, typeAt, `unknown array element type ${itemType}`);
  }
  if (count64 > BigInt(GGUF_LIMITS.maxArrayElements)) {
    throw new GgufFormatError("GGUF_ARRAY_TOO_LONG", field, countAt, `array count ${count64} exceeds the limit ${GGUF_LIMITS.maxArrayElements}`);
  }
  const count = Number(count64);
  // Every element takes at least one byte (strings: 8): reject impossible counts before allocating.
  const minItem = itemType === GgufValueType.STRING ? 8 : (scalarSize(itemType));
  if (count * minItem > c.remaining) {
    throw new GgufFormatError("GGUF_TRUNCATED", field, countAt, `array of ${count} elements needs at least ${count * minItem} bytes, ${c.remaining} left`);
  }
  const out: unknown[] = new Array(count);
  if (itemType === GgufValueType.STRING) {
    for (let i = 0; i < count; i++) out[i] = c.string(`${field}[${i}]`);
  } else {
    for (let i = 0; i < count; i++) out[i] = c.scalar(itemType, `${field}[${i}]`);
  }
  return { type: GgufValueType.ARRAY, itemType, value: out } as GgufArrayValue;
}

function scalarSize(t: number): number {
  switch (t) {
    case GgufValueType.UINT8: case GgufValueType.INT8: case GgufValueType.BOOL: return 1;
    case GgufValueType.UINT16: case GgufValueType.INT16: return 2;
    case GgufValueType.UINT32: case GgufValueType.INT32: case GgufValueType.FLOAT32: return 4;
    default: return 8;
  }
}

/** Parse and validate a GGUF header. Throws GgufFormatError naming the field and byte offset. */
export function parseGgufHeader(src: SyncByteSource): GgufHeader {
  const c = new Cursor(src);
  const magic = c.u32("magic");
  if (magic !== GGUF_MAGIC) {
    throw new GgufFormatError("GGUF_BAD_MAGIC", "magic", 0, `expected "GGUF", found 0x${magic.toString(16).padStart(8, "0")}`);
  }
  const version = c.u32("version");
  if ((version & 0xffff) === 0 && version !== 0) {
    throw new GgufFormatError("GGUF_BAD_VERSION", "version", 4, `version 0x${version.toString(16)} looks byte-swapped: big-endian GGUF is not supported`);
  }
  if (version !== 2 && version !== 3) {
    throw new GgufFormatError("GGUF_BAD_VERSION", "version", 4, `unsupported GGUF version ${version} (supported: 2, 3)`);
  }
  const nTensors64 = c.u64("tensor_count");
  if (nTensors64 > BigInt(GGUF_LIMITS.maxTensors)) {
    throw new GgufFormatError("GGUF_TOO_MANY_TENSORS", "tensor_count", 8, `${nTensors64} tensors exceeds the limit ${GGUF_LIMITS.maxTensors}`);
  }
  const nKv64 = c.u64("kv_count");
  if (nKv64 > BigInt(GGUF_LIMITS.maxKv)) {
    throw new GgufFormatError("GGUF_TOO_MANY_KV", "kv_count", 16, `${nKv64} key-value pairs exceeds the limit ${GGUF_LIMITS.maxKv}`);
  }
  const nTensors = Number(nTensors64);
  const nKv = Number(nKv64);

  const metadata: GgufMetadata = new Map();
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  for (let i = 0; i < nKv; i++) {
    const keyAt = c.pos;
    const key = c.string(`kv[${i}].key`);
    if (key.length === 0) throw new GgufFormatError("GGUF_EMPTY_KEY", `kv[${i}].key`, keyAt, "empty key");
    // gguf.cpp handles keys as C strings: an embedded NUL makes a different (even empty) key and
    // llama.cpp then aborts (GGML_ASSERT(!key.empty())). Control characters are never legitimate.
    if (CONTROL_CHARS.test(key)) {
      throw new GgufFormatError("GGUF_BAD_KEY", `kv[${i}].key`, keyAt, `key ${JSON.stringify(key)} contains a NUL or control character`);
    }
    if (metadata.has(key)) throw new GgufFormatError("GGUF_DUPLICATE_KEY", key, keyAt, "duplicate key");
    const typeAt = c.pos;
    const type = c.u32(`${key} type`);
    const value = readValue(c, type, key, typeAt);
    if (key === "general.alignment") {
      if (value.type !== GgufValueType.UINT32) {
        throw new GgufFormatError("GGUF_BAD_ALIGNMENT", key, typeAt, `must be u32, found value type ${value.type}`);
      }
      const a = value.value;
      if (a === 0 || (a & (a - 1)) !== 0 || a > GGUF_LIMITS.maxAlignment) {
        throw new GgufFormatError("GGUF_BAD_ALIGNMENT", key, typeAt + 4, `alignment ${a} is not a power of two <= ${GGUF_LIMITS.maxAlignment}`);
      }
      alignment = a;
    }
    metadata.set(key, value);
  }

  // Each tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes: reject impossible counts early.
  if (nTensors * 32 > c.remaining) {
    throw new GgufFormatError("GGUF_TRUNCATED", "tensor_count", 8, `${nTensors} tensor infos cannot fit in the ${c.remaining} bytes left`);
  }
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  let expectedOffset = 0;
  for (let i = 0; i < nTensors; i++) {
    const infoOffset = c.pos;
    const name = c.string(`tensor[${i}].name`, 1 << 16);
    const field = `tensor '${name}'`;
    const nameBytes = utf8Encoder.encode(name).length;
    if (nameBytes >= GGUF_LIMITS.maxTensorNameLength) {
      throw new GgufFormatError("GGUF_TENSOR_NAME", field, infoOffset, `name is ${nameBytes} bytes, limit ${GGUF_LIMITS.maxTensorNameLength - 1}`);
    }
    if (name.length === 0) throw new GgufFormatError("GGUF_TENSOR_NAME", `tensor[${i}].name`, infoOffset, "empty tensor name");
    if (CONTROL_CHARS.test(name)) {
      throw new GgufFormatError("GGUF_TENSOR_NAME", `tensor[${i}].name`, infoOffset, `name ${JSON.stringify(name)} contains a NUL or control character`);
    }
    if (names.has(name)) throw new GgufFormatError("GGUF_DUPLICATE_TENSOR", field, infoOffset, "duplicate tensor name");
    names.add(name);
    const dimsAt = c.pos;
    const nDims = c.u32(`${field} n_dims`);
    if (nDims < 1 || nDims > GGUF_LIMITS.maxDims) {
      throw new GgufFormatError("GGUF_BAD_DIMS", `${field} n_dims`, dimsAt, `n_dims is ${nDims}, expected 1..${GGUF_LIMITS.maxDims}`);
    }
    const ne: number[] = [];
    let elements = 1n;
    for (let d = 0; d < nDims; d++) {
      const at = c.pos;
      const v = c.u64(`${field} ne[${d}]`);
      // gguf.cpp reads ne as int64 and rejects negatives; we also reject 0 (no empty weights).
      if (v === 0n || v >= 1n << 63n) {
        throw new GgufFormatError("GGUF_BAD_SHAPE", `${field} ne[${d}]`, at, `dimension ${BigInt.asIntN(64, v)} must be positive`);
      }
      elements *= v;
      if (elements > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new GgufFormatError("GGUF_SIZE_OVERFLOW", `${field} ne`, at, "element count overflows");
      }
      ne.push(Number(v));
    }
    const typeAt = c.pos;
    const type = c.u32(`${field} type`);
    const traits = GGML_TYPES.get(type);
    if (!traits) throw new GgufFormatError("GGUF_UNKNOWN_TYPE", `${field} type`, typeAt, `unknown ggml type ${type}`);
    if (ne[0]! % traits.blockSize !== 0) {
      throw new GgufFormatError("GGUF_PARTIAL_BLOCK", `${field} ne[0]`, dimsAt + 4, `${ne[0]} is not a multiple of the ${traits.name} block size ${traits.blockSize}`);
    }
    const bytes = (BigInt(ne[0]!) / BigInt(traits.blockSize)) * BigInt(traits.typeSize) * (elements / BigInt(ne[0]!));
    if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new GgufFormatError("GGUF_SIZE_OVERFLOW", `${field} size`, dimsAt, "byte size overflows");
    }
    const offAt = c.pos;
    const off64 = c.u64(`${field} offset`);
    if (off64 !== BigInt(expectedOffset)) {
      throw new GgufFormatError("GGUF_BAD_OFFSET", `${field} offset`, offAt, `offset is ${off64}, expected ${expectedOffset} (tensors must be back to back, each padded to ${alignment})`);
    }
    const byteLength = Number(bytes);
    tensors.push({ name, ne, type, offset: expectedOffset, byteLength, infoOffset });
    expectedOffset += Math.ceil(byteLength / alignment) * alignment;
    if (expectedOffset > Number.MAX_SAFE_INTEGER) {
      throw new GgufFormatError("GGUF_SIZE_OVERFLOW", `${field} offset`, offAt, "data section size overflows");
    }
  }

  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const fileSize = src.size;
  for (const t of tensors) {
    const end = dataOffset + t.offset + t.byteLength;
    if (end > fileSize) {
      throw new GgufFormatError("GGUF_DATA_OUT_OF_FILE", `tensor '${t.name}' data`, dataOffset + t.offset, `ends at byte ${end}, past the end of the file (${fileSize} bytes)`);
    }
  }
  return { version, metadata, tensors, alignment, dataOffset, dataLength: expectedOffset, fileSize };
}
