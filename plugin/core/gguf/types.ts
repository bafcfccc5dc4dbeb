/**
 * In-memory model of a GGUF file's header: metadata values, tensor infos and layout.
 * Tensor data is never held here; it is addressed by offsets (see rows.ts).
 */
import { GgufValueType } from "./constants.js";

export type GgufNumberType =
  | GgufValueType.UINT8
  | GgufValueType.INT8
  | GgufValueType.UINT16
  | GgufValueType.INT16
  | GgufValueType.UINT32
  | GgufValueType.INT32
  | GgufValueType.FLOAT32
  | GgufValueType.FLOAT64;

export type GgufBigIntType = GgufValueType.UINT64 | GgufValueType.INT64;

/** One metadata value, tagged with its wire type so a round trip is exact. */
export type GgufValue =
  | { readonly type: GgufNumberType; readonly value: number }
  | { readonly type: GgufBigIntType; readonly value: bigint }
  | { readonly type: GgufValueType.BOOL; readonly value: boolean }
  | { readonly type: GgufValueType.STRING; readonly value: string }
  | GgufArrayValue;

export type GgufArrayValue =
  | { readonly type: GgufValueType.ARRAY; readonly itemType: GgufNumberType; readonly value: readonly number[] }
  | { readonly type: GgufValueType.ARRAY; readonly itemType: GgufBigIntType; readonly value: readonly bigint[] }
  | { readonly type: GgufValueType.ARRAY; readonly itemType: GgufValueType.BOOL; readonly value: readonly boolean[] }
  | { readonly type: GgufValueType.ARRAY; readonly itemType: GgufValueType.STRING; readonly value: readonly string[] }
  | { readonly type: GgufValueType.ARRAY; readonly itemType: GgufValueType.ARRAY; readonly value: readonly GgufArrayValue[] };

/** Ordered metadata: GGUF keeps insertion order and so do we. */
export type GgufMetadata = Map<string, GgufValue>;

export interface GgufTensorInfo {
  readonly name: string;
  /** ne[0] is the contiguous (row) dimension. Numbers: every valid file fits 2^53. */
  readonly ne: readonly number[];
  readonly type: number;
  /** Offset relative to the start of the data section. */
  readonly offset: number;
  /** Bytes of data: nrows * row bytes. */
  readonly byteLength: number;
  /** Byte offset in the file where this tensor's info record starts (for error messages). */
  readonly infoOffset: number;
}

export interface GgufHeader {
  readonly version: number;
  readonly metadata: GgufMetadata;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute file offset of the data section. */
  readonly dataOffset: number;
  /** Bytes from dataOffset to the end of the last tensor (padded as the writer pads). */
  readonly dataLength: number;
  /** Total size of the file the header was read from. */
  readonly fileSize: number;
}

/** Convenience constructors for metadata values. */
export const kv = {
  u8: (v: number): GgufValue => ({ type: GgufValueType.UINT8, value: v }),
  i8: (v: number): GgufValue => ({ type: GgufValueType.INT8, value: v }),
  u16: (v: number): GgufValue => ({ type: GgufValueType.UINT16, value: v }),
  i16: (v: number): GgufValue => ({ type: GgufValueType.INT16, value: v }),
  u32: (v: number): GgufValue => ({ type: GgufValueType.UINT32, value: v }),
  i32: (v: number): GgufValue => ({ type: GgufValueType.INT32, value: v }),
  f32: (v: number): GgufValue => ({ type: GgufValueType.FLOAT32, value: v }),
  f64: (v: number): GgufValue => ({ type: GgufValueType.FLOAT64, value: v }),
  u64: (v: bigint): GgufValue => ({ type: GgufValueType.UINT64, value: v }),
  i64: (v: bigint): GgufValue => ({ type: GgufValueType.INT64, value: v }),
  bool: (v: boolean): GgufValue => ({ type: GgufValueType.BOOL, value: v }),
  str: (v: string): GgufValue => ({ type: GgufValueType.STRING, value: v }),
  strs: (v: readonly string[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: v }),
  i32s: (v: readonly number[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: v }),
  f32s: (v: readonly number[]): GgufValue => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: v }),
};

/** The plain JS value of a metadata entry (for display and JSON). */
export function plainValue(v: GgufValue): unknown {
  return v.value;
}
