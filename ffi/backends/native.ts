/** RowCipherBackend over a kernel library (C or CUDA): one synchronous call per batch. */
import {
  assertSpans,
  assertTags,
  decryptResult,
  deriveRowKey,
  ROW_TAG_BYTES,
  type RowDecryptResult,
  type RowSpanTable,
} from "../../plugin/core/cipher/row-cipher.js";
import type { RowCipherBackend, RowCipherBackendName } from "../../plugin/core/ports.js";
import { BackendError } from "../../plugin/errors.js";
import { SnStatus, statusName, type SnLibrary } from "../abi.js";

export interface NativeBackendOptions {
  /** Worker threads for the C library (0 = all online CPUs). */
  readonly threads?: number;
}

export class NativeRowCipherBackend implements RowCipherBackend {
  readonly name: RowCipherBackendName;
  readonly detail: string;
  readonly threads: number;
  private lib: SnLibrary | null;

  constructor(name: "c" | "cuda", lib: SnLibrary, detail: string, options: NativeBackendOptions = {}) {
    this.name = name;
    this.lib = lib;
    this.threads = options.threads ?? 0;
    this.detail = detail;
  }

  /** @internal the bound library, for tests and the bench (ISA caps, memcpy). */
  get library(): SnLibrary {
    if (!this.lib) throw new BackendError("E_BACKEND_DISPOSED", `${this.name} backend used after dispose()`);
    return this.lib;
  }

  private fail(op: string, status: number): never {
    throw new BackendError(
      "E_BACKEND_CALL",
      `${this.name} backend: ${op} returned ${statusName(status)}: ${this.library.lastErrorDetail() || "no detail"}`,
      { backend: this.name, op, status },
    );
  }

  encryptRows(data: Uint8Array, spans: RowSpanTable, nodeKey: Uint8Array): Uint8Array {
    const lib = this.library;
    assertSpans(spans, data.length);
    const tags = new Uint8Array(spans.count * ROW_TAG_BYTES);
    if (spans.count === 0) return tags;
    const key = deriveRowKey(nodeKey);
    try {
      const st = lib.rowsEncrypt(key, data, spans.packed(), spans.count, tags, this.threads);
      if (st !== SnStatus.OK) this.fail("sn_rows_encrypt", st);
    } finally {
      key.fill(0);
    }
    return tags;
  }

  decryptRows(data: Uint8Array, spans: RowSpanTable, nodeKey: Uint8Array, tags: Uint8Array): RowDecryptResult {
    const lib = this.library;
    assertSpans(spans, data.length);
    assertTags(tags, spans.count);
    const rowOk = new Uint8Array(spans.count);
    if (spans.count === 0) return decryptResult(rowOk);
    const key = deriveRowKey(nodeKey);
    try {
      const st = lib.rowsDecrypt(key, data, spans.packed(), spans.count, tags, rowOk, this.threads);
      if (st !== SnStatus.OK && st !== SnStatus.ERR_AUTH) this.fail("sn_rows_decrypt", st);
    } finally {
      key.fill(0);
    }
    return decryptResult(rowOk);
  }

  dispose(): void {
    // koffi keeps function pointers alive per library; unloading a library that other
    // backend objects still use would crash, so the loader owns unloading (see load.ts).
    this.lib = null;
  }
}
