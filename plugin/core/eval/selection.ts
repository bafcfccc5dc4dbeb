/**
 * The profiles and scorings behind each selection method (pure). Every method goes through the
 * same selectNeurons + sealModel path; only the importances and the scoring differ:
 * - ablation: the ablation profile (loss increase when a unit is zeroed in llama.cpp), "ratio" scoring;
 * - specificity: the measured activation profile, "ratio" scoring;
 * - largest-activation: the measured profile, raw "importance" scoring (mean |a| on the task);
 * - weight-norm: importance = sqrt(||gate_i||^2 + ||up_i||^2) (weightNormImportance), "importance"
 *   scoring, the same for every task (a data-free baseline);
 * - random: seeded uniform importances per task, "importance" scoring (a random subset).
 */
import type { Scoring } from "../profile/select.js";
import { mulberry32 } from "../seeded-random.js";
import type { Profile, TaskProfile } from "../profile/profile.js";
import type { Method } from "./results.js";

/** Deterministic uniform [0, 1) from a 32-bit seed (mulberry32). */
export const seededRandom = mulberry32;

export function methodScoring(method: Method): Scoring {
  return method === "specificity" || method === "ablation" ? "ratio" : "importance";
}

/** L2 norm of each row of a row-major matrix of `rowLength` columns. */
export function rowL2Norms(values: Float32Array, rowLength: number): Float64Array {
  const rows = Math.floor(values.length / rowLength);
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = r * rowLength; i < (r + 1) * rowLength; i++) s += values[i]! * values[i]!;
    out[r] = Math.sqrt(s);
  }
  return out;
}

/**
 * Weight-norm importance of neuron i: the L2 norm of its gate and up rows taken together,
 * sqrt(||gate_i||^2 + ||up_i||^2). Rows of exactly zero give 0 (never selected).
 */
export function weightNormImportance(gateNorms: ArrayLike<number>, upNorms: ArrayLike<number>): number[] {
  if (gateNorms.length !== upNorms.length) throw new RangeError(`gate has ${gateNorms.length} rows, up ${upNorms.length}`);
  return Array.from({ length: gateNorms.length }, (_, i) => Math.sqrt(gateNorms[i]! ** 2 + upNorms[i]! ** 2));
}

function withTasks(base: Profile, tool: string, f: (task: string, t: TaskProfile) => TaskProfile): Profile {
  const tasks: Record<string, TaskProfile> = {};
  for (const [name, t] of Object.entries(base.tasks)) tasks[name] = f(name, t);
  return { ...base, source: { ...(base.source ?? {}), tool }, tasks };
}

/** Seeded random importances in (0, 1] for every task, layer and neuron of the base profile. */
export function randomProfile(base: Profile, seed: number): Profile {
  const r = seededRandom(seed);
  const nFf = base.model.feedForwardLength;
  return withTasks(base, `secneuron eval: random importances, seed ${seed}`, (_n, t) => ({
    tokens: t.tokens,
    layers: Array.from({ length: base.model.blockCount }, (_, layer) => ({
      layer,
      importance: Array.from({ length: nFf }, () => 1 - r()),
      ...(base.model.headGroups ? { heads: Array.from({ length: base.model.headGroups }, () => 1 - r()) } : {}),
    })),
  }));
}

/** The same weight-norm importance (per layer) for every task of the base profile. */
export function weightNormProfile(base: Profile, perLayer: ReadonlyMap<number, readonly number[]>): Profile {
  return withTasks(base, "secneuron eval: weight norm of ffn_gate/ffn_up rows", (_n, t) => ({
    tokens: t.tokens,
    layers: [...perLayer].sort((a, b) => a[0] - b[0]).map(([layer, importance]) => ({ layer, importance: [...importance] })),
  }));
}
