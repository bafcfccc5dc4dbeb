/** One row-cipher backend per process: probing native libraries costs a child process. */
import { loadRowCipherBackend } from "../../ffi/load.js";
import type { RowCipherBackend } from "../core/ports.js";

let cached: RowCipherBackend | undefined;

export function rowCipherBackend(): RowCipherBackend {
  cached ??= loadRowCipherBackend();
  return cached;
}
