/** Shared helpers for the row-cipher suites: seeded randomness, backend list, ggml row sizes. */
import type { RowCipherBackend } from "../../plugin/core/ports.js";
import { RowSpanTable } from "../../plugin/core/cipher/row-cipher.js";
import { describeBackends, loadBackend } from "../../ffi/load.js";
import type { NativeRowCipherBackend } from "../../ffi/backends/native.js";

export const SEED = Number(process.env.SECNEURON_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** xorshift32: deterministic bytes from a seed (printed by each suite so a failure can be replayed). */
export function rng(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = next() & 0xff;
    return out;
  };
}

export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, "hex"));
}
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex");
}

/** Bytes per row of 4096 elements for the ggml types in NOTES.md (block elements, block bytes). */
export const GGML_ROW_BYTES_4096: Record<string, number> = Object.fromEntries(
  (
    [
      ["F32", 1, 4], ["F16", 1, 2], ["BF16", 1, 2], ["Q4_0", 32, 18], ["Q4_1", 32, 20], ["Q5_0", 32, 22],
      ["Q5_1", 32, 24], ["Q8_0", 32, 34], ["Q2_K", 256, 84], ["Q3_K", 256, 110], ["Q4_K", 256, 144],
      ["Q5_K", 256, 176], ["Q6_K", 256, 210], ["MXFP4", 32, 17],
    ] as const
  ).map(([name, be, bb]) => [name, (4096 / be) * bb]),
);

/** Spans laid out back to back from `start`, one per length, ids derived from the index. */
export function spansFor(lengths: readonly number[], start = 0, gap = 0): { spans: RowSpanTable; size: number } {
  const spans = new RowSpanTable(lengths.length);
  let off = start;
  lengths.forEach((len, i) => {
    spans.push(off, len, (i * 2654435761) >>> 20, i * 3 + 1);
    off += len + gap;
  });
  return { spans, size: off + 5 };
}

export interface BackendCase {
  readonly label: string;
  readonly make: () => RowCipherBackend;
  /** Whether the case is fast enough for MiB-sized batches. */
  readonly fast: boolean;
}

/** js always; c at each instruction-set level this CPU has; cuda when it probes OK. */
export function backendCases(): BackendCase[] {
  const status = describeBackends();
  const cases: BackendCase[] = [{ label: "js", make: () => loadBackend("js"), fast: true }];
  const c = status.find((s) => s.name === "c");
  if (c?.available) {
    const probe = loadBackend("c", { threads: 2 }) as NativeRowCipherBackend;
    const best = probe.library.setIsaLevel(-1);
    for (let level = best; level >= 0; level--) {
      cases.push({
        label: `c/isa${level}`,
        fast: level > 0,
        make: () => {
          const b = loadBackend("c", { threads: 2 }) as NativeRowCipherBackend;
          b.library.setIsaLevel(level);
          return b;
        },
      });
    }
  }
  if (status.find((s) => s.name === "cuda")?.available) {
    cases.push({ label: "cuda", make: () => loadBackend("cuda"), fast: true });
  }
  return cases;
}
