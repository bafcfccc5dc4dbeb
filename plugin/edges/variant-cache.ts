/**
 * Variants cached per (model digest, node set) within a memory budget: acquiring a variant that
 * exists reuses it; when the cached variants exceed the budget, the least recently used ones that
 * nobody holds are deleted. Revoking nodes reaches every live variant of the model that has them.
 */
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { SecNeuronError } from "../errors.js";
import { Variant, type SealedModel } from "./unseal.js";

interface Entry {
  readonly key: string;
  readonly variant: Variant;
  readonly bytes: number;
  refs: number;
  lastUsed: number;
}

export interface VariantLease {
  readonly variant: Variant;
  release(): void;
}

export class VariantCache {
  private readonly entries = new Map<string, Entry>();
  private pending = new Map<string, Promise<Entry>>();
  private clock = 0;

  constructor(private readonly opts: { dir: string; budgetBytes: number; allowDisk?: boolean; onEvict?: (variant: Variant) => Promise<void> | void }) {}

  static key(model: SealedModel, nodes: Iterable<number>): string {
    return `${model.info.plaintextSha256}/${[...nodes].sort((a, b) => a - b).map((k) => model.info.nodes[k]!.id).join(",")}`;
  }

  get bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.bytes;
    return n;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The variant of `model` with exactly the nodes in `nodeKeys` decrypted. */
  async acquire(model: SealedModel, nodeKeys: ReadonlyMap<number, Uint8Array>): Promise<VariantLease> {
    const key = VariantCache.key(model, nodeKeys.keys());
    let entry = this.entries.get(key);
    if (!entry) {
      let p = this.pending.get(key);
      if (!p) {
        p = (async () => {
          if (model.header.fileSize > this.opts.budgetBytes) {
            throw new SecNeuronError("VARIANT_OVER_BUDGET", `a variant of ${model.path} needs ${model.header.fileSize} bytes, the cache budget is ${this.opts.budgetBytes}`);
          }
          await this.makeRoom(model.header.fileSize);
          const out = join(this.opts.dir, `variant-${randomBytes(8).toString("hex")}.gguf`);
          const variant = await Variant.create(model, out, nodeKeys, { allowDisk: this.opts.allowDisk });
          const e: Entry = { key, variant, bytes: model.header.fileSize, refs: 0, lastUsed: 0 };
          this.entries.set(key, e);
          return e;
        })().finally(() => this.pending.delete(key));
        this.pending.set(key, p);
      }
      entry = await p;
    }
    entry.refs++;
    entry.lastUsed = ++this.clock;
    let released = false;
    const e = entry;
    return {
      variant: e.variant,
      release: () => {
        if (released) return;
        released = true;
        e.refs--;
      },
    };
  }

  /** Zero `nodeIds` of `modelDigest` in every cached variant that has them (takes effect live). */
  async revokeNodes(modelDigest: string, nodeIds: readonly string[]): Promise<number> {
    let touched = 0;
    for (const e of this.entries.values()) {
      const v = e.variant;
      if (v.model.info.plaintextSha256 !== modelDigest) continue;
      const ks = v.nodes.filter((k) => nodeIds.includes(v.model.info.nodes[k]!.id));
      if (ks.length) {
        await v.revoke(ks);
        touched++;
      }
    }
    return touched;
  }

  private async makeRoom(need: number): Promise<void> {
    const idle = [...this.entries.values()].filter((e) => e.refs === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    while (this.bytes + need > this.opts.budgetBytes && idle.length) {
      const e = idle.shift()!;
      this.entries.delete(e.key);
      await this.opts.onEvict?.(e.variant);
      await e.variant.dispose();
    }
    if (this.bytes + need > this.opts.budgetBytes) {
      throw new SecNeuronError("VARIANT_CACHE_FULL", `no room for a ${need}-byte variant: ${this.bytes} of ${this.opts.budgetBytes} bytes are held by variants in use`);
    }
  }

  async dispose(): Promise<void> {
    await Promise.allSettled([...this.pending.values()]);
    for (const e of this.entries.values()) {
      await this.opts.onEvict?.(e.variant);
      await e.variant.dispose();
    }
    this.entries.clear();
  }
}
