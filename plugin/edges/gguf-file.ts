/**
 * GGUF files on disk: read a header through a file handle, write a new file atomically
 * (temporary file in the same directory, fsync, rename), and rewrite a file row by row in
 * bounded memory. The input of a rewrite is only ever read.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { GgufFormatError } from "../errors.js";
import type { SyncByteSource } from "../core/gguf/byte-source.js";
import { parseGgufHeader } from "../core/gguf/reader.js";
import { layoutGguf, type TensorSpec } from "../core/gguf/writer.js";
import { alignUp, tensorRowBytes } from "../core/gguf/rows.js";
import type { GgufHeader, GgufMetadata, GgufTensorInfo } from "../core/gguf/types.js";

/** A SyncByteSource over an open file descriptor. */
export function fdSource(fd: number): SyncByteSource {
  const size = fstatSync(fd).size;
  let scratch = Buffer.alloc(0);
  return {
    size,
    read(offset, length) {
      const n = Math.max(0, Math.min(length, size - offset));
      if (scratch.length < n) scratch = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const r = readSync(fd, scratch, got, n - got, offset + got);
        if (r === 0) break;
        got += r;
      }
      return scratch.subarray(0, got);
    },
  };
}

/** Parse and validate the header of a GGUF file; tensor data is not read. */
export function readGgufHeader(path: string): GgufHeader {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new GgufFormatError("GGUF_OPEN_FAILED", path, undefined, `cannot open: ${(e as Error).message}`);
  }
  try {
    return parseGgufHeader(fdSource(fd));
  } finally {
    closeSync(fd);
  }
}

/** Supplies a tensor's data: whole chunks that add up to exactly tensor.byteLength. */
export type TensorDataSource = (tensor: GgufTensorInfo, index: number) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface WriteOptions {
  /** Called after each tensor with bytes written so far and the total (for progress bars). */
  onProgress?: (done: number, total: number) => void;
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
}

/**
 * Write a GGUF file from metadata, tensor specs and a data source, streaming. The file appears
 * at `path` only when complete (rename); on any error the temporary file is removed.
 */
export async function writeGgufStream(
  path: string,
  metadata: GgufMetadata,
  tensors: readonly TensorSpec[],
  data: TensorDataSource,
  options: WriteOptions = {},
): Promise<GgufHeader> {
  const layout = layoutGguf(metadata, tensors);
  const { header } = layout;
  const tmp = tempPathFor(path);
  const fh = await open(tmp, "wx", 0o644);
  try {
    let pos = 0;
    const put = async (b: Uint8Array): Promise<void> => {
      let off = 0;
      while (off < b.length) {
        const { bytesWritten } = await fh.write(b, off, b.length - off, pos);
        off += bytesWritten;
        pos += bytesWritten;
      }
    };
    await put(layout.headerBytes);
    const total = header.dataLength;
    for (let i = 0; i < header.tensors.length; i++) {
      const t = header.tensors[i]!;
      let written = 0;
      for await (const chunk of data(t, i)) {
        if (written + chunk.length > t.byteLength) {
          throw new GgufFormatError("GGUF_DATA_SIZE", `tensor '${t.name}' data`, undefined, `source gave more than ${t.byteLength} bytes`);
        }
        await put(chunk);
        written += chunk.length;
      }
      if (written !== t.byteLength) {
        throw new GgufFormatError("GGUF_DATA_SIZE", `tensor '${t.name}' data`, undefined, `source gave ${written} bytes, expected ${t.byteLength}`);
      }
      const pad = alignUp(t.byteLength, header.alignment) - t.byteLength;
      if (pad) await put(new Uint8Array(pad));
      options.onProgress?.(t.offset + alignUp(t.byteLength, header.alignment), total);
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
    return header;
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
}

export interface TensorWithData extends TensorSpec {
  readonly data: Uint8Array;
}

/** Write a small GGUF whose tensor data is in memory. */
export function writeGgufFile(path: string, metadata: GgufMetadata, tensors: readonly TensorWithData[]): Promise<GgufHeader> {
  return writeGgufStream(path, metadata, tensors, (_t, i) => [tensors[i]!.data]);
}

/** Transforms rows in place: bytes holds rowCount whole rows starting at firstRow. */
export type RowTransform = (tensor: GgufTensorInfo, firstRow: number, rowCount: number, bytes: Uint8Array) => void;

export interface RewriteOptions extends WriteOptions {
  /** New metadata; default: the input's. */
  metadata?: GgufMetadata;
  rowTransform?: RowTransform;
  /** Upper bound on the bytes read per chunk (whole rows; at least one row). Default 8 MiB. */
  chunkBytes?: number;
}

/**
 * Copy a GGUF file to `outPath`, optionally with new metadata and a row transform, streaming
 * whole rows in bounded memory. Tensor data offsets stay the same relative to the data section.
 */
export async function rewriteGguf(inPath: string, outPath: string, options: RewriteOptions = {}): Promise<GgufHeader> {
  const input = readGgufHeader(inPath);
  const inStat = await stat(inPath);
  const outStat = await stat(outPath).catch(() => undefined);
  if (outStat && outStat.ino === inStat.ino && outStat.dev === inStat.dev) {
    throw new GgufFormatError("GGUF_SAME_FILE", outPath, undefined, "output would overwrite the input");
  }
  const chunkBytes = options.chunkBytes ?? 8 << 20;
  const fh = await open(inPath, "r");
  try {
    const specs = input.tensors.map((t) => ({ name: t.name, ne: t.ne, type: t.type }));
    return await writeGgufStream(
      outPath,
      options.metadata ?? input.metadata,
      specs,
      async function* (t, i) {
        const src = input.tensors[i]!;
        const rb = tensorRowBytes(src);
        const rowsPerChunk = Math.max(1, Math.floor(chunkBytes / rb));
        const totalRows = src.byteLength / rb;
        const buf = Buffer.allocUnsafe(Math.min(totalRows, rowsPerChunk) * rb);
        for (let row = 0; row < totalRows; row += rowsPerChunk) {
          const n = Math.min(rowsPerChunk, totalRows - row);
          const view = buf.subarray(0, n * rb);
          const { bytesRead } = await fh.read(view, 0, view.length, input.dataOffset + src.offset + row * rb);
          if (bytesRead !== view.length) {
            throw new GgufFormatError("GGUF_TRUNCATED", `tensor '${t.name}' data`, input.dataOffset + src.offset + row * rb, "short read");
          }
          options.rowTransform?.(t, row, n, view);
          yield view;
        }
      },
      options,
    );
  } finally {
    await fh.close();
  }
}
