/**
 * Row cipher, version 1: the framing that every backend (CUDA, C, JS) implements byte for byte.
 * The spec is docs/row-cipher.md. This module is pure (no I/O): key derivation, per-row IV and
 * AAD, the span table that batches rows, and the readable reference implementation (the oracle,
 * over @noble/ciphers, independent of OpenSSL) that the fast backends must match.
 *
 *   rowKey = HKDF-SHA256(ikm = nodeKey, salt = "secneuron/row-cipher/v1", info = "aes-256-gcm row key", 32)
 *   iv     = u32le(tensorId) || u32le(rowId) || u32le(0)                       (12 bytes)
 *   aad    = "SNR1" || u32le(tensorId) || u32le(rowId) || u32le(length)         (16 bytes)
 *   ciphertext, tag = AES-256-GCM(rowKey, iv, aad, row)   ciphertext replaces the row in place,
 *                                                          the 16-byte tag is stored by the caller
 */
import { gcm } from "@noble/ciphers/aes.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { CryptoError } from "../../errors.js";

export const ROW_CIPHER_VERSION = 1;
export const ROW_CIPHER_SCHEME = "secneuron-row-v1/aes-256-gcm";
export const NODE_KEY_BYTES = 32;
export const ROW_KEY_BYTES = 32;
export const ROW_IV_BYTES = 12;
export const ROW_AAD_BYTES = 16;
export const ROW_TAG_BYTES = 16;
/** Largest row the framing allows (length is a u32 in the AAD). */
export const MAX_ROW_BYTES = 0xffff_ffff;
export const ROW_KDF_SALT = new TextEncoder().encode("secneuron/row-cipher/v1");
export const ROW_KDF_INFO = new TextEncoder().encode("aes-256-gcm row key");
export const ROW_AAD_MAGIC = new Uint8Array([0x53, 0x4e, 0x52, 0x31]); // "SNR1"
/** u32 words per span in a RowSpanTable; the layout of `sn_span` in secneuron_kernels.h. */
export const SPAN_WORDS = 6;

function assertU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new CryptoError("E_ROW_SPAN", `${what}: expected an integer in [0, 2^32), found ${value}`, {
      what,
      value,
    });
  }
}

export function assertNodeKey(nodeKey: Uint8Array): void {
  if (!(nodeKey instanceof Uint8Array) || nodeKey.length !== NODE_KEY_BYTES) {
    throw new CryptoError(
      "E_KEY_LENGTH",
      `node key: expected ${NODE_KEY_BYTES} bytes, found ${nodeKey instanceof Uint8Array ? nodeKey.length : typeof nodeKey}`,
      { expected: NODE_KEY_BYTES },
    );
  }
}

/** The AES-256-GCM key for every row of one node. The caller should zero it after use. */
export function deriveRowKey(nodeKey: Uint8Array): Uint8Array {
  assertNodeKey(nodeKey);
  return hkdf(sha256, nodeKey, ROW_KDF_SALT, ROW_KDF_INFO, ROW_KEY_BYTES);
}

export function rowIv(tensorId: number, rowId: number): Uint8Array {
  assertU32(tensorId, "tensorId");
  assertU32(rowId, "rowId");
  const iv = new Uint8Array(ROW_IV_BYTES);
  const dv = new DataView(iv.buffer);
  dv.setUint32(0, tensorId, true);
  dv.setUint32(4, rowId, true);
  return iv;
}

export function rowAad(tensorId: number, rowId: number, length: number): Uint8Array {
  assertU32(tensorId, "tensorId");
  assertU32(rowId, "rowId");
  assertU32(length, "length");
  const aad = new Uint8Array(ROW_AAD_BYTES);
  aad.set(ROW_AAD_MAGIC, 0);
  const dv = new DataView(aad.buffer);
  dv.setUint32(4, tensorId, true);
  dv.setUint32(8, rowId, true);
  dv.setUint32(12, length, true);
  return aad;
}

/** One row: where it lies in the batch buffer and which (tensor, row) it is. */
export interface RowSpan {
  readonly offset: number;
  readonly length: number;
  readonly tensorId: number;
  readonly rowId: number;
}

/**
 * A batch of row spans, packed as `SPAN_WORDS` little-endian u32 per row:
 * offset_lo, offset_hi, length, tensorId, rowId, reserved(0). This is `sn_span[]` in the C ABI,
 * so native backends pass `words` straight through.
 */
export class RowSpanTable {
  readonly words: Uint32Array;
  private n = 0;

  constructor(capacity = 16) {
    this.words = new Uint32Array(Math.max(1, capacity) * SPAN_WORDS);
  }

  static from(spans: Iterable<RowSpan>): RowSpanTable {
    const list = Array.isArray(spans) ? (spans as RowSpan[]) : [...spans];
    const t = new RowSpanTable(list.length);
    for (const s of list) t.push(s.offset, s.length, s.tensorId, s.rowId);
    return t;
  }

  /** Contiguous rows of one tensor: rows [firstRow, firstRow+count) of `rowBytes` each from `offset`. */
  static contiguous(
    offset: number,
    rowBytes: number,
    count: number,
    tensorId: number,
    firstRow = 0,
  ): RowSpanTable {
    const t = new RowSpanTable(count);
    for (let i = 0; i < count; i++) t.push(offset + i * rowBytes, rowBytes, tensorId, firstRow + i);
    return t;
  }

  get count(): number {
    return this.n;
  }

  push(offset: number, length: number, tensorId: number, rowId: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new CryptoError("E_ROW_SPAN", `span ${this.n} offset: expected a safe non-negative integer, found ${offset}`);
    }
    assertU32(length, `span ${this.n} length`);
    assertU32(tensorId, `span ${this.n} tensorId`);
    assertU32(rowId, `span ${this.n} rowId`);
    if (this.n * SPAN_WORDS >= this.words.length) this.grow();
    const w = this.words;
    const o = this.n * SPAN_WORDS;
    w[o] = offset % 0x1_0000_0000;
    w[o + 1] = Math.floor(offset / 0x1_0000_0000);
    w[o + 2] = length;
    w[o + 3] = tensorId;
    w[o + 4] = rowId;
    w[o + 5] = 0;
    this.n++;
  }

  private grow(): void {
    const bigger = new Uint32Array(this.words.length * 2);
    bigger.set(this.words);
    (this as { words: Uint32Array }).words = bigger;
  }

  offset(i: number): number {
    return this.words[i * SPAN_WORDS]! + this.words[i * SPAN_WORDS + 1]! * 0x1_0000_0000;
  }
  length(i: number): number {
    return this.words[i * SPAN_WORDS + 2]!;
  }
  tensorId(i: number): number {
    return this.words[i * SPAN_WORDS + 3]!;
  }
  rowId(i: number): number {
    return this.words[i * SPAN_WORDS + 4]!;
  }
  get(i: number): RowSpan {
    return { offset: this.offset(i), length: this.length(i), tensorId: this.tensorId(i), rowId: this.rowId(i) };
  }
  /** The packed words of the first `count` spans (a view, no copy). */
  packed(): Uint32Array {
    return this.words.subarray(0, this.n * SPAN_WORDS);
  }
}

/**
 * Checks that every span lies inside a buffer of `dataLength` bytes and that no two spans
 * overlap (rows are rewritten in place in parallel). Linear when spans are sorted by offset.
 */
export function assertSpans(spans: RowSpanTable, dataLength: number): void {
  const n = spans.count;
  let sorted = true;
  let prevEnd = 0;
  for (let i = 0; i < n; i++) {
    const off = spans.offset(i);
    const end = off + spans.length(i);
    if (end > dataLength) {
      throw new CryptoError(
        "E_ROW_SPAN",
        `span ${i} (tensor ${spans.tensorId(i)}, row ${spans.rowId(i)}): bytes [${off}, ${end}) lie outside the ${dataLength}-byte buffer`,
        { span: i, offset: off, end, dataLength },
      );
    }
    if (off < prevEnd) sorted = false;
    prevEnd = Math.max(prevEnd, end);
  }
  if (sorted) return;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => spans.offset(a) - spans.offset(b));
  for (let k = 1; k < n; k++) {
    const a = order[k - 1]!;
    const b = order[k]!;
    if (spans.length(a) > 0 && spans.length(b) > 0 && spans.offset(a) + spans.length(a) > spans.offset(b)) {
      throw new CryptoError("E_ROW_SPAN", `spans ${a} and ${b} overlap`, { spans: [a, b] });
    }
  }
}

export function assertTags(tags: Uint8Array, count: number): void {
  if (!(tags instanceof Uint8Array) || tags.length !== count * ROW_TAG_BYTES) {
    throw new CryptoError(
      "E_TAG_LENGTH",
      `tags: expected ${count} x ${ROW_TAG_BYTES} = ${count * ROW_TAG_BYTES} bytes, found ${tags instanceof Uint8Array ? tags.length : typeof tags}`,
      { expected: count * ROW_TAG_BYTES },
    );
  }
}

/** Outcome of a batch decryption: per-row flags (1 = authentic and decrypted, 0 = rejected). */
export interface RowDecryptResult {
  readonly ok: boolean;
  readonly failed: number;
  readonly rowOk: Uint8Array;
}

export function decryptResult(rowOk: Uint8Array): RowDecryptResult {
  let failed = 0;
  for (let i = 0; i < rowOk.length; i++) if (rowOk[i] !== 1) failed++;
  return { ok: failed === 0, failed, rowOk };
}

/** Throws a CryptoError naming the first rejected rows when a batch did not fully authenticate. */
export function assertDecrypted(result: RowDecryptResult, spans: RowSpanTable): void {
  if (result.ok) return;
  const rows: Array<{ span: number; tensorId: number; rowId: number }> = [];
  for (let i = 0; i < result.rowOk.length && rows.length < 8; i++) {
    if (result.rowOk[i] !== 1) rows.push({ span: i, tensorId: spans.tensorId(i), rowId: spans.rowId(i) });
  }
  const first = rows[0]!;
  throw new CryptoError(
    "E_ROW_AUTH",
    `${result.failed} of ${result.rowOk.length} rows failed authentication (first: tensor ${first.tensorId}, row ${first.rowId}): wrong key, wrong row ids or tampered bytes`,
    { failed: result.failed, rows },
  );
}

/** Reference: encrypts one row with the derived row key; returns [ciphertext, tag]. */
export function sealRowReference(
  rowKey: Uint8Array,
  tensorId: number,
  rowId: number,
  plaintext: Uint8Array,
): { ciphertext: Uint8Array; tag: Uint8Array } {
  const sealed = gcm(rowKey, rowIv(tensorId, rowId), rowAad(tensorId, rowId, plaintext.length)).encrypt(plaintext);
  return {
    ciphertext: sealed.subarray(0, plaintext.length),
    tag: sealed.subarray(plaintext.length),
  };
}

/** Reference: verifies and decrypts one row; returns null when the tag does not verify. */
export function openRowReference(
  rowKey: Uint8Array,
  tensorId: number,
  rowId: number,
  ciphertext: Uint8Array,
  tag: Uint8Array,
): Uint8Array | null {
  const joined = new Uint8Array(ciphertext.length + ROW_TAG_BYTES);
  joined.set(ciphertext, 0);
  joined.set(tag, ciphertext.length);
  try {
    return gcm(rowKey, rowIv(tensorId, rowId), rowAad(tensorId, rowId, ciphertext.length)).decrypt(joined);
  } catch {
    return null;
  }
}

/** Reference batch encryption in place (slow: for tests and tiny inputs). */
export function encryptRowsReference(data: Uint8Array, spans: RowSpanTable, nodeKey: Uint8Array): Uint8Array {
  assertSpans(spans, data.length);
  const key = deriveRowKey(nodeKey);
  const tags = new Uint8Array(spans.count * ROW_TAG_BYTES);
  for (let i = 0; i < spans.count; i++) {
    const off = spans.offset(i);
    const row = data.subarray(off, off + spans.length(i));
    const { ciphertext, tag } = sealRowReference(key, spans.tensorId(i), spans.rowId(i), row);
    row.set(ciphertext);
    tags.set(tag, i * ROW_TAG_BYTES);
  }
  key.fill(0);
  return tags;
}

/** Reference batch decryption in place; rejected rows are left unchanged. */
export function decryptRowsReference(
  data: Uint8Array,
  spans: RowSpanTable,
  nodeKey: Uint8Array,
  tags: Uint8Array,
): RowDecryptResult {
  assertSpans(spans, data.length);
  assertTags(tags, spans.count);
  const key = deriveRowKey(nodeKey);
  const rowOk = new Uint8Array(spans.count);
  for (let i = 0; i < spans.count; i++) {
    const off = spans.offset(i);
    const row = data.subarray(off, off + spans.length(i));
    const plain = openRowReference(key, spans.tensorId(i), spans.rowId(i), row, tags.subarray(i * 16, i * 16 + 16));
    if (plain) {
      row.set(plain);
      rowOk[i] = 1;
    }
  }
  key.fill(0);
  return decryptResult(rowOk);
}
