/**
 * From an authenticated caller, a served model and the requested tasks to the variant the host
 * serves: least privilege (only the nodes the tasks need when tasks are named, else every node
 * the caller's attributes unlock), node keys unlocked once per (manifest, model, tasks) and
 * cached, variants shared per node set through the VariantCache, registered with the host under
 * a stable name (`<model>--<node ids>`). Also decides, when manifests change, which live variants
 * no remaining manifest justifies, and revokes them in place.
 */
import { SecNeuronError } from "../errors.js";
import type { UserKey } from "../core/abe/fame.js";
import { authorizedNodes } from "../core/policy/tree.js";
import { sealedTree } from "../core/seal/sealed-metadata.js";
import type { HostAdapter, HostTarget } from "../hosts/host-adapter.js";
import type { ServedModel } from "./model-registry.js";
import { unlockNodeKeys, type SealedModel } from "./unseal.js";
import { VariantCache, type VariantLease } from "./variant-cache.js";

export interface Caller {
  readonly manifestId: string;
  readonly subject: string;
  readonly attributes: readonly string[];
  /** Model scope: names and/or sha256:<hex> digests; undefined = every model. */
  readonly models?: readonly string[];
  readonly userKey: UserKey;
}

export class AccessError extends SecNeuronError {
  constructor(code: string, readonly status: number, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
  }
}

export interface Resolved {
  readonly target: HostTarget;
  /** The name the host knows the variant (or plain model) by. */
  readonly variantName: string;
  /** Node ids decrypted in the variant (empty for plain models and for no grant). */
  readonly nodes: readonly string[];
  readonly tasks: readonly string[] | null;
  release(): void;
}

export function inScope(caller: Pick<Caller, "models">, served: ServedModel): boolean {
  if (!caller.models) return true;
  return caller.models.some((m) => {
    const name = m.endsWith(":latest") ? m.slice(0, -7) : m;
    return name === served.name || (served.sealed && m === `sha256:${served.model.info.plaintextSha256}`);
  });
}

/** Tasks sealed in a model. */
export function sealedTasks(model: SealedModel): string[] {
  return [...new Set(model.info.nodes.flatMap((n) => n.tasks))].sort();
}

/** Node indices the caller unlocks for `tasks` (all grants when null); throws AccessError on an unknown or ungranted task. */
export function grantedNodes(model: SealedModel, attributes: readonly string[], tasks: readonly string[] | null): number[] {
  const tree = sealedTree(model.info);
  if (tasks) {
    const known = sealedTasks(model);
    for (const t of tasks) {
      if (!known.includes(t)) throw new AccessError("TASK_UNKNOWN", 400, `task '${t}' is not sealed in this model (its tasks: ${known.join(", ")})`, { task: t });
      const need = model.info.nodes.filter((n) => n.tasks.includes(t));
      const got = new Set(authorizedNodes(tree, attributes, [t]).map((x) => x.node.id));
      if (!need.every((n) => got.has(n.id))) throw new AccessError("TASK_NOT_GRANTED", 403, `your key does not grant task '${t}'`, { task: t });
    }
  }
  const ids = new Set(authorizedNodes(tree, attributes, tasks ?? undefined).map((x) => x.node.id));
  return model.info.nodes.map((n, k) => (ids.has(n.id) ? k : -1)).filter((k) => k >= 0);
}

export function variantName(served: ServedModel, nodeIds: readonly string[]): string {
  if (!served.sealed) return served.name;
  return `${served.name}--${nodeIds.length ? [...nodeIds].sort().join(".") : "base"}`;
}

export class VariantResolver {
  private readonly keys = new Map<string, Map<number, Uint8Array>>();
  private readonly active = new Set<string>();
  private readonly nameOfPath = new Map<string, string>();
  private readonly grants = new Map<string, number[]>();

  private cache!: VariantCache;

  constructor(private readonly host: HostAdapter) {}

  /** The cache is created after the resolver so that its onEvict can call back here. */
  attach(cache: VariantCache): this {
    this.cache = cache;
    return this;
  }

  async resolve(caller: Caller, served: ServedModel, tasks: readonly string[] | null): Promise<Resolved> {
    if (!inScope(caller, served)) throw new AccessError("MODEL_NOT_IN_SCOPE", 403, `your key does not cover model '${served.name}'`);
    if (!served.sealed) {
      if (tasks) throw new AccessError("TASK_UNKNOWN", 400, `model '${served.name}' is not sealed: it has no tasks to select`);
      const target = await this.host.ensureModel(served.name, served.path);
      this.active.add(served.name);
      return { target, variantName: served.name, nodes: [], tasks: null, release() {} };
    }
    const model = served.model;
    // Policy evaluation is pure: memoize it per (manifest, model, tasks) for the hot path.
    const grantKey = `${caller.manifestId}|${model.info.plaintextSha256}|${tasks?.join(",") ?? "*"}|${caller.attributes.join(",")}`;
    let nodes = this.grants.get(grantKey);
    if (!nodes) {
      nodes = grantedNodes(model, caller.attributes, tasks);
      this.grants.set(grantKey, nodes);
    }
    const cacheKey = `${caller.manifestId}|${model.info.plaintextSha256}|${nodes.join(",")}`;
    let keys = this.keys.get(cacheKey);
    if (!keys) {
      const all = unlockNodeKeys(model, caller.userKey, tasks ?? undefined);
      keys = new Map([...all].filter(([k]) => nodes.includes(k)));
      this.keys.set(cacheKey, keys);
    }
    const lease: VariantLease = await this.cache.acquire(model, keys);
    const nodeIds = nodes.map((k) => model.info.nodes[k]!.id);
    const name = variantName(served, nodeIds);
    try {
      const target = await this.host.ensureModel(name, lease.variant.path);
      this.active.add(name);
      this.nameOfPath.set(lease.variant.path, name);
      return { target, variantName: name, nodes: nodeIds, tasks, release: () => lease.release() };
    } catch (e) {
      lease.release();
      throw e;
    }
  }

  /** The cache evicts a variant: unregister it from the host first (wire as VariantCache onEvict). */
  async evicted(variant: { path: string }): Promise<void> {
    const name = this.nameOfPath.get(variant.path);
    if (!name) return;
    this.nameOfPath.delete(variant.path);
    this.active.delete(name);
    await this.host.removeModel(name).catch(() => {});
  }

  /** Names registered with the host through this resolver. */
  activeNames(): ReadonlySet<string> {
    return this.active;
  }

  /** Forget the node keys unlocked for a manifest (it was removed or replaced). */
  forgetManifest(manifestId: string): void {
    for (const k of this.grants.keys()) if (k.startsWith(`${manifestId}|`)) this.grants.delete(k);
    for (const [k, v] of this.keys) {
      if (k.startsWith(`${manifestId}|`)) {
        for (const key of v.values()) key.fill(0);
        this.keys.delete(k);
      }
    }
  }

  /**
   * After manifests changed: zero, in every live variant, the nodes that no remaining manifest
   * unlocks for that model. Returns how many variants were touched.
   */
  async revokeUnjustified(models: readonly ServedModel[], active: ReadonlyArray<Pick<Caller, "attributes" | "models">>): Promise<number> {
    let touched = 0;
    for (const served of models) {
      if (!served.sealed) continue;
      const justified = new Set<string>();
      for (const c of active) {
        if (!inScope(c, served)) continue;
        for (const k of grantedNodes(served.model, c.attributes, null)) justified.add(served.model.info.nodes[k]!.id);
      }
      const revoke = served.model.info.nodes.map((n) => n.id).filter((id) => !justified.has(id));
      if (revoke.length) touched += await this.cache.revokeNodes(served.model.info.plaintextSha256, revoke);
    }
    return touched;
  }
}
