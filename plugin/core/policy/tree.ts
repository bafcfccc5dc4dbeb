/**
 * The layered policy tree: every sealed neuron (FFN neuron or attention head group) belongs to
 * exactly one node; a node is the set of locked tasks that selected the neuron. Task-exclusive neurons sit in single-task nodes, neurons
 * several locked tasks need sit in the node of that task set. A node's key is wrapped once per
 * task of the node, under that task's policy (by default `task:<name> or admin`): holding any one
 * of them unlocks the node. Wrapping per task, rather than under one OR of all of them, keeps
 * every CP-ABE policy free of repeated attributes (which FAME forbids, docs/cp-abe.md) even when
 * task policies share attributes such as `tier:pro`.
 */
import { PolicyError } from "../../errors.js";
import { parsePolicy, printPolicy, satisfies } from "../abe/policy.js";
import type { NeuronRef, Selection } from "../profile/select.js";

export interface TreeNode {
  /** The node's tasks joined with "+", sorted: stable and readable (`digits+letters`). */
  readonly id: string;
  readonly tasks: readonly string[];
  /** Canonical policy per task, same order as `tasks`. */
  readonly policies: readonly string[];
  /** Sealed neurons: layer -> sorted neuron indices. */
  readonly neurons: ReadonlyMap<number, readonly number[]>;
  /** Sealed attention head groups: layer -> sorted group indices (empty map when none). */
  readonly heads: ReadonlyMap<number, readonly number[]>;
}

export interface PolicyTree {
  readonly nodes: readonly TreeNode[];
}

export interface TreeOptions {
  /** Custom policy per task (default `task:<name>`). */
  readonly policies?: Readonly<Record<string, string>>;
  /** Add `or admin` to every policy (default true). */
  readonly admin?: boolean;
}

export function taskPolicy(task: string, options: TreeOptions = {}): string {
  const base = options.policies?.[task] ?? `task:${task}`;
  let node;
  try {
    node = parsePolicy(options.admin === false ? base : `(${base}) or admin`);
  } catch (e) {
    const err = e as PolicyError;
    const hint = options.admin === false ? "" : " (it is combined with 'or admin'; pass admin: false if it already names admin)";
    throw new PolicyError(err.code, `policy for task '${task}': ${err.message}${hint}`, { ...err.details, task });
  }
  return printPolicy(node);
}

export function buildPolicyTree(selection: Selection, options: TreeOptions = {}): PolicyTree {
  for (const t of Object.keys(options.policies ?? {})) {
    if (!selection.perTask.has(t)) throw new PolicyError("policy-unknown-task", `a policy is given for '${t}', which is not locked`, { task: t });
  }
  const owners = new Map<string, { kind: "neurons" | "heads"; ref: NeuronRef; tasks: string[] }>();
  const own = (kind: "neurons" | "heads", perTask: ReadonlyMap<string, readonly NeuronRef[]>): void => {
    for (const [task, refs] of perTask) {
      for (const ref of refs) {
        const k = `${kind}:${ref.layer}:${ref.index}`;
        const o = owners.get(k) ?? { kind, ref, tasks: [] };
        o.tasks.push(task);
        owners.set(k, o);
      }
    }
  };
  own("neurons", selection.perTask);
  if (selection.perTaskHeads) own("heads", selection.perTaskHeads);
  const nodes = new Map<string, { tasks: string[]; neurons: Map<number, number[]>; heads: Map<number, number[]> }>();
  for (const { kind, ref, tasks } of owners.values()) {
    tasks.sort();
    const id = tasks.join("+");
    const n = nodes.get(id) ?? { tasks, neurons: new Map(), heads: new Map() };
    const list = n[kind].get(ref.layer) ?? [];
    list.push(ref.index);
    n[kind].set(ref.layer, list);
    nodes.set(id, n);
  }
  const sorted = (m: Map<number, number[]>): Map<number, number[]> =>
    new Map([...m.entries()].sort((a, b) => a[0] - b[0]).map(([l, idx]) => [l, idx.sort((a, b) => a - b)]));
  const out: TreeNode[] = [...nodes.entries()]
    .sort(([a, x], [b, y]) => x.tasks.length - y.tasks.length || (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, n]) => ({
      id,
      tasks: n.tasks,
      policies: n.tasks.map((t) => taskPolicy(t, options)),
      neurons: sorted(n.neurons),
      heads: sorted(n.heads),
    }));
  return { nodes: out };
}

/** FFN neurons in a node. */
export function nodeNeuronCount(node: Pick<TreeNode, "neurons">): number {
  let n = 0;
  for (const idx of node.neurons.values()) n += idx.length;
  return n;
}

/** Attention head groups in a node. */
export function nodeHeadCount(node: Pick<TreeNode, "heads">): number {
  let n = 0;
  for (const idx of node.heads.values()) n += idx.length;
  return n;
}

/**
 * Which nodes a holder of `attributes` may unlock, restricted to nodes that serve `tasks` when
 * given (least privilege: a request for `letters` decrypts only nodes that contain `letters`).
 * For each node, the index of a policy the attributes satisfy.
 */
export function authorizedNodes(tree: PolicyTree, attributes: Iterable<string>, tasks?: readonly string[]): Array<{ node: TreeNode; policyIndex: number }> {
  const attrs = new Set(attributes);
  const out: Array<{ node: TreeNode; policyIndex: number }> = [];
  for (const node of tree.nodes) {
    const relevant = node.tasks.map((t, i) => ({ t, i })).filter(({ t }) => !tasks || tasks.includes(t));
    const hit = relevant.find(({ i }) => satisfies(parsePolicy(node.policies[i]!), attrs));
    if (hit) out.push({ node, policyIndex: hit.i });
  }
  return out;
}
