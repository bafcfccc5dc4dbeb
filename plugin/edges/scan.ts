/**
 * Detection scan over a GGUF file: classify every selected row (default: every row of every
 * ffn_gate / ffn_up tensor) as real weights, ciphertext or zeroed, reading whole rows in chunks
 * through one file handle (bounded memory).
 */
import { open } from "node:fs/promises";
import { GgufFormatError } from "../errors.js";
import { classifyRow } from "../core/detect/classify.js";
import { tensorRowBytes, tensorRowCount } from "../core/gguf/rows.js";
import type { GgufTensorInfo } from "../core/gguf/types.js";
import { readGgufHeader } from "./gguf-file.js";

export interface ScanOptions {
  /** Which tensors to scan; default: FFN gate/up weights (see isFfnNeuronTensor). */
  tensors?: (t: GgufTensorInfo) => boolean;
  /** Shortcut for `tensors`: every tensor with two or more dimensions. */
  allTensors?: boolean;
  /** Called after each chunk with bytes scanned so far and the total to scan. */
  onProgress?: (done: number, total: number) => void;
  /** Upper bound on bytes read per chunk (whole rows, at least one). Default 8 MiB. */
  chunkBytes?: number;
}

export interface TensorScan {
  readonly tensor: string;
  readonly type: number;
  readonly rows: number;
  readonly encrypted: number;
  readonly zeroed: number;
}

export interface ScanResult {
  rowsScanned: number;
  encrypted: Array<{ tensor: string; row: number }>;
  zeroed: number;
  bytesScanned: number;
  seconds: number;
  perTensor: TensorScan[];
}

/** FFN neuron tensors: row i of blk.N.ffn_gate / blk.N.ffn_up (fused ffn_gate_up too). */
export function isFfnNeuronTensor(t: GgufTensorInfo): boolean {
  return t.ne.length >= 2 && /^blk\.\d+\.ffn_(gate|up|gate_up)(_exps)?\.weight$/.test(t.name);
}

/** Attention head tensors: rows of blk.N.attn_q / attn_k / attn_v (fused attn_qkv too). */
export function isAttnHeadTensor(t: GgufTensorInfo): boolean {
  return t.ne.length >= 2 && /^blk\.\d+\.attn_(q|k|v|qkv)\.weight$/.test(t.name);
}

/** Both neuron kinds: FFN gate/up rows and attention q/k/v rows. */
export function isNeuronTensor(t: GgufTensorInfo): boolean {
  return isFfnNeuronTensor(t) || isAttnHeadTensor(t);
}

export function isMatrixTensor(t: GgufTensorInfo): boolean {
  return t.ne.length >= 2 && t.ne.slice(1).some((n) => n > 1);
}

export async function scanGguf(path: string, options: ScanOptions = {}): Promise<ScanResult> {
  const start = performance.now();
  const header = readGgufHeader(path);
  const filter = options.tensors ?? (options.allTensors ? isMatrixTensor : isFfnNeuronTensor);
  const selected = header.tensors.filter(filter);
  const total = selected.reduce((a, t) => a + t.byteLength, 0);
  const chunkBytes = options.chunkBytes ?? 8 << 20;
  const maxRow = selected.reduce((a, t) => Math.max(a, tensorRowBytes(t)), 0);
  const buf = Buffer.allocUnsafe(Math.max(maxRow, Math.min(chunkBytes, total)));
  const result: ScanResult = { rowsScanned: 0, encrypted: [], zeroed: 0, bytesScanned: 0, seconds: 0, perTensor: [] };
  const fh = await open(path, "r");
  try {
    for (const t of selected) {
      const rb = tensorRowBytes(t);
      const rows = tensorRowCount(t);
      const perChunk = Math.max(1, Math.floor(buf.length / rb));
      const stats = { tensor: t.name, type: t.type, rows, encrypted: 0, zeroed: 0 };
      for (let row = 0; row < rows; row += perChunk) {
        const n = Math.min(perChunk, rows - row);
        const pos = header.dataOffset + t.offset + row * rb;
        const view = buf.subarray(0, n * rb);
        let got = 0;
        while (got < view.length) {
          const { bytesRead } = await fh.read(view, got, view.length - got, pos + got);
          if (bytesRead === 0) throw new GgufFormatError("GGUF_TRUNCATED", `tensor '${t.name}' data`, pos + got, "short read while scanning");
          got += bytesRead;
        }
        for (let r = 0; r < n; r++) {
          const v = classifyRow(t.type, view.subarray(r * rb, (r + 1) * rb));
          if (v.encrypted) { stats.encrypted++; result.encrypted.push({ tensor: t.name, row: row + r }); }
          else if (v.state === "zeroed") { stats.zeroed++; result.zeroed++; }
        }
        result.rowsScanned += n;
        result.bytesScanned += view.length;
        options.onProgress?.(result.bytesScanned, total);
      }
      result.perTensor.push(stats);
    }
  } finally {
    await fh.close();
  }
  result.seconds = (performance.now() - start) / 1000;
  return result;
}
