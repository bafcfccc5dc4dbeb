/**
 * Ports: interfaces the edges implement and the pure core calls. Adapters live outside core/.
 */
import type { RowDecryptResult, RowSpanTable } from "./cipher/row-cipher.js";

export type { RowDecryptResult, RowSpan, RowSpanTable } from "./cipher/row-cipher.js";

// ---------------------------------------------------------------------------------------------
// RowCipherBackend (owner: row cipher, issue 3). Spec: docs/row-cipher.md, docs/backends.md.

export type RowCipherBackendName = "cuda" | "c" | "js";
export type RowCipherDirection = "encrypt" | "decrypt";

/**
 * Encrypts and decrypts batches of rows in place with the version 1 row cipher
 * (AES-256-GCM per row, IV and AAD from (tensorId, rowId, length), detached 16-byte tags).
 * Every implementation produces the same bytes and tags as the reference in core/cipher.
 */
export interface RowCipherBackend {
  readonly name: RowCipherBackendName;
  /** Human-readable detail: instruction set, threads, device. */
  readonly detail: string;
  /**
   * Encrypts every span of `data` in place under `nodeKey` (32 bytes); returns the tags,
   * 16 bytes per span in span order, for the caller to store outside the rows.
   */
  encryptRows(data: Uint8Array, spans: RowSpanTable, nodeKey: Uint8Array): Uint8Array;
  /**
   * Verifies each span against its tag and decrypts it in place. A row whose tag does not
   * verify is left unchanged (still ciphertext) and flagged 0 in `rowOk`; never throws for that.
   */
  decryptRows(data: Uint8Array, spans: RowSpanTable, nodeKey: Uint8Array, tags: Uint8Array): RowDecryptResult;
  /** Releases native resources; the backend is unusable afterwards. */
  dispose(): void;
}
