/** The always-available backend: node:crypto AES-256-GCM, one cipher object per row. */
import { createCipheriv, createDecipheriv } from "node:crypto";
import {
  assertSpans,
  assertTags,
  decryptResult,
  deriveRowKey,
  ROW_TAG_BYTES,
  rowAad,
  rowIv,
  type RowDecryptResult,
  type RowSpanTable,
} from "../../plugin/core/cipher/row-cipher.js";
import type { RowCipherBackend } from "../../plugin/core/ports.js";

export class JsRowCipherBackend implements RowCipherBackend {
  readonly name = "js" as const;
  readonly detail = `node:crypto aes-256-gcm (OpenSSL ${process.versions.openssl})`;

  encryptRows(data: Uint8Array, spans: RowSpanTable, nodeKey: Uint8Array): Uint8Array {
    assertSpans(spans, data.length);
    const tags = new Uint8Array(spans.count * ROW_TAG_BYTES);
    if (spans.count === 0) return tags;
    const key = deriveRowKey(nodeKey);
    try {
      for (let i = 0; i < spans.count; i++) {
        const off = spans.offset(i);
        const len = spans.length(i);
        const t = spans.tensorId(i);
        const r = spans.rowId(i);
        const c = createCipheriv("aes-256-gcm", key, rowIv(t, r));
        c.setAAD(rowAad(t, r, len));
        const row = data.subarray(off, off + len);
        const out = c.update(row);
        c.final();
        row.set(out);
        tags.set(c.getAuthTag(), i * ROW_TAG_BYTES);
      }
    } finally {
      key.fill(0);
    }
    return tags;
  }

  decryptRows(data: Uint8Array, spans: RowSpanTable, nodeKey: Uint8Array, tags: Uint8Array): RowDecryptResult {
    assertSpans(spans, data.length);
    assertTags(tags, spans.count);
    const rowOk = new Uint8Array(spans.count);
    if (spans.count === 0) return decryptResult(rowOk);
    const key = deriveRowKey(nodeKey);
    try {
      for (let i = 0; i < spans.count; i++) {
        const off = spans.offset(i);
        const len = spans.length(i);
        const t = spans.tensorId(i);
        const r = spans.rowId(i);
        const d = createDecipheriv("aes-256-gcm", key, rowIv(t, r));
        d.setAAD(rowAad(t, r, len));
        d.setAuthTag(tags.subarray(i * ROW_TAG_BYTES, (i + 1) * ROW_TAG_BYTES));
        const row = data.subarray(off, off + len);
        const plain = d.update(row);
        try {
          d.final();
        } catch {
          plain.fill(0);
          continue; // rejected: the row keeps its ciphertext
        }
        row.set(plain);
        rowOk[i] = 1;
      }
    } finally {
      key.fill(0);
    }
    return decryptResult(rowOk);
  }

  dispose(): void {}
}

export function createJsBackend(): JsRowCipherBackend {
  return new JsRowCipherBackend();
}
