/**
 * Synchronous random-access byte sources for the parser. The core never opens files: an edge
 * hands it a source (a file handle, a Buffer) and the parser asks for exactly the bytes it needs.
 */

export interface SyncByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Bytes [offset, offset + length). May return fewer bytes only at end of source.
   * The returned view is valid until the next call.
   */
  read(offset: number, length: number): Uint8Array;
}

export function bufferSource(bytes: Uint8Array): SyncByteSource {
  return {
    size: bytes.length,
    read(offset, length) {
      return bytes.subarray(offset, Math.min(bytes.length, offset + length));
    },
  };
}
