/**
 * GGUF mutation fuzzer core: structure-aware mutations of valid seed files, classified by our
 * reader + llama.cpp validation into accepted, rejected (by error code) or crashed. Mutants share
 * the seed's tensor data and only copy the header region, so 100,000 cases over MB-sized seeds
 * run in seconds.
 */
import { createHash } from "node:crypto";
import type { SyncByteSource } from "../../plugin/core/gguf/byte-source.js";
import { bufferSource } from "../../plugin/core/gguf/byte-source.js";
import { validateLlamaModel } from "../../plugin/core/gguf/llama-check.js";
import { parseGgufHeader } from "../../plugin/core/gguf/reader.js";
import type { GgufHeader } from "../../plugin/core/gguf/types.js";
import { SecNeuronError } from "../../plugin/errors.js";
import { Xoshiro128 } from "../../examples/random-model/random-model.js";

export interface Seed {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly header: GgufHeader;
}

export function makeSeed(name: string, bytes: Uint8Array): Seed {
  const own = new Uint8Array(bytes); // plain copy: Buffer#slice would alias the seed
  return { name, bytes: own, header: parseGgufHeader(bufferSource(own)) };
}

/** A mutated file: a new head, then the seed's bytes from `tailFrom`, cut at `size`. */
export interface Mutant {
  readonly seed: Seed;
  readonly head: Uint8Array;
  readonly tailFrom: number;
  readonly size: number;
  readonly ops: string[];
}

export function mutantSource(m: Mutant): SyncByteSource {
  const { head, tailFrom, size } = m;
  const base = m.seed.bytes;
  return {
    size,
    read(offset, length) {
      const end = Math.min(size, offset + length);
      if (end <= offset) return new Uint8Array(0);
      if (end <= head.length) return head.subarray(offset, end);
      const out = new Uint8Array(end - offset);
      let o = 0;
      if (offset < head.length) { out.set(head.subarray(offset), 0); o = head.length - offset; }
      const from = tailFrom + (offset + o - head.length);
      const chunk = base.subarray(from, from + (out.length - o));
      out.set(chunk, o);
      return out;
    },
  };
}

export function mutantBytes(m: Mutant): Uint8Array {
  return mutantSource(m).read(0, m.size).slice();
}

const U32_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 30, 31, 39, 40, 0x7fffffff, 0x80000000, 0xffffffff, 0xffff, 0x10000];
const U64_VALUES = [0n, 1n, 2n, 31n, 32n, 33n, 64n, 1n << 31n, 1n << 32n, 1n << 40n, 1n << 62n, 1n << 63n, (1n << 64n) - 1n, (1n << 63n) - 1n];
const BYTES = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x41];

export class Mutator {
  readonly rng: Xoshiro128;
  constructor(seed: number) { this.rng = new Xoshiro128(seed); }
  int(n: number): number { return this.rng.next() % n; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]!; }

  mutate(seed: Seed): Mutant {
    const hdrEnd = seed.header.dataOffset;
    // The head covers the header plus a little data, so that data-region flips are possible too.
    let head = seed.bytes.slice(0, Math.min(seed.bytes.length, hdrEnd + 256));
    let tailFrom = head.length;
    let size = seed.bytes.length;
    const ops: string[] = [];
    const n = 1 + this.int(3);
    for (let k = 0; k < n; k++) {
      const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
      const pos = this.int(Math.max(1, Math.min(head.length, hdrEnd)));
      const op = this.int(11);
      switch (op) {
        case 0: { const bit = this.int(8); head[pos]! ^= 1 << bit; ops.push(`flip ${pos}.${bit}`); break; }
        case 1: { const v = this.pick(BYTES); head[pos] = v; ops.push(`byte ${pos}=${v}`); break; }
        case 2: { if (pos + 4 <= head.length) { const v = this.pick(U32_VALUES); dv.setUint32(pos, v, true); ops.push(`u32 ${pos}=${v}`); } break; }
        case 3: { if (pos + 8 <= head.length) { const v = this.pick(U64_VALUES); dv.setBigUint64(pos, v, true); ops.push(`u64 ${pos}=${v}`); } break; }
        case 4: { size = this.int(size + 1); ops.push(`truncate ${size}`); break; }
        case 5: { const at = this.pick([8, 16]); const v = this.pick([0n, 1n, 2n, 1n << 32n, 1n << 62n]); dv.setBigUint64(at, at === 8 ? BigInt(seed.header.tensors.length) + v - 1n : BigInt(seed.header.metadata.size) + v - 1n, true); ops.push(`count ${at}±${v}`); break; }
        case 6: {
          // A tensor info field: n_dims, a dimension, the type or the offset.
          const t = this.pick(seed.header.tensors);
          const nameLen = Number(dv.getBigUint64(t.infoOffset, true));
          if (nameLen > 64) break;
          const dims = t.infoOffset + 8 + nameLen;
          const nd = t.ne.length;
          const choice = this.int(4);
          if (choice === 0) dv.setUint32(dims, this.pick([0, 1, 2, 3, 4, 5]), true);
          else if (choice === 1) dv.setBigUint64(dims + 4 + 8 * this.int(nd), this.pick([...U64_VALUES, BigInt(t.ne[0]! * 2), BigInt(t.ne[0]! / 2)]), true);
          else if (choice === 2) dv.setUint32(dims + 4 + 8 * nd, this.pick(U32_VALUES), true);
          else dv.setBigUint64(dims + 8 + 8 * nd, BigInt(this.pick([0, 32, t.offset + 32, Math.max(0, t.offset - 32), t.offset + t.byteLength])), true);
          ops.push(`tensor ${t.name} field ${choice}`);
          break;
        }
        case 7: { // delete a header range (shifts everything after it)
          const len = 1 + this.int(16);
          const next = new Uint8Array(Math.max(0, head.length - len));
          next.set(head.subarray(0, pos));
          next.set(head.subarray(Math.min(head.length, pos + len)), pos);
          size -= head.length - next.length;
          head = next;
          ops.push(`delete ${pos}+${len}`);
          break;
        }
        case 8: { // insert bytes
          const ins = new Uint8Array(1 + this.int(16)).map(() => this.rng.next() & 0xff);
          const next = new Uint8Array(head.length + ins.length);
          next.set(head.subarray(0, pos));
          next.set(ins, pos);
          next.set(head.subarray(pos), pos + ins.length);
          size += ins.length;
          head = next;
          ops.push(`insert ${pos}+${ins.length}`);
          break;
        }
        case 9: { // append garbage at the end of the file
          if (head.length === seed.bytes.length) {
            const extra = new Uint8Array(1 + this.int(64)).map(() => this.rng.next() & 0xff);
            const next = new Uint8Array(head.length + extra.length);
            next.set(head); next.set(extra, head.length);
            head = next; size = head.length; tailFrom = seed.bytes.length;
            ops.push(`append ${extra.length}`);
          }
          break;
        }
        default: { // a flip anywhere in the head, data included
          const p = this.int(head.length); head[p]! ^= 1 << this.int(8); ops.push(`flip* ${p}`);
        }
      }
    }
    size = Math.max(0, Math.min(size, head.length + Math.max(0, seed.bytes.length - tailFrom)));
    return { seed, head, tailFrom, size, ops };
  }
}

export type Outcome =
  | { kind: "accepted"; header: GgufHeader; headerHash: string }
  | { kind: "rejected"; code: string }
  | { kind: "crash"; error: string };

/** Parse + validate as the product does before llama.cpp ever sees a file. */
export function classify(m: Mutant): Outcome {
  try {
    const header = parseGgufHeader(mutantSource(m));
    validateLlamaModel(header);
    const headerHash = createHash("sha256").update(m.head.subarray(0, Math.min(m.head.length, header.dataOffset))).update(String(m.size)).digest("hex");
    return { kind: "accepted", header, headerHash };
  } catch (e) {
    if (e instanceof SecNeuronError) return { kind: "rejected", code: e.code };
    return { kind: "crash", error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e) };
  }
}

export interface FuzzStats {
  cases: number;
  accepted: number;
  rejected: number;
  crashes: number;
  rejectionClasses: Record<string, number>;
  slowestCaseMs: number;
  uniqueAccepted: Map<string, Mutant>;
  crashSamples: Array<{ ops: string[]; seed: string; error: string }>;
}

export function runFuzz(seeds: readonly Seed[], cases: number, rngSeed: number, maxKeptAccepted = 1000): FuzzStats {
  const m = new Mutator(rngSeed);
  const stats: FuzzStats = { cases: 0, accepted: 0, rejected: 0, crashes: 0, rejectionClasses: {}, slowestCaseMs: 0, uniqueAccepted: new Map(), crashSamples: [] };
  for (let i = 0; i < cases; i++) {
    const seed = seeds[i % seeds.length]!;
    const mutant = m.mutate(seed);
    const t0 = performance.now();
    const out = classify(mutant);
    stats.slowestCaseMs = Math.max(stats.slowestCaseMs, performance.now() - t0);
    stats.cases++;
    if (out.kind === "accepted") {
      stats.accepted++;
      if (!stats.uniqueAccepted.has(out.headerHash) && stats.uniqueAccepted.size < maxKeptAccepted) stats.uniqueAccepted.set(out.headerHash, mutant);
    } else if (out.kind === "rejected") {
      stats.rejected++;
      stats.rejectionClasses[out.code] = (stats.rejectionClasses[out.code] ?? 0) + 1;
    } else {
      stats.crashes++;
      if (stats.crashSamples.length < 10) stats.crashSamples.push({ ops: mutant.ops, seed: seed.name, error: out.error });
    }
  }
  return stats;
}
