/**
 * Neuron selection: from a profile and a lock spec, which FFN neurons each locked task seals.
 *
 * Specificity (the default, "ratio"): for task t and neuron (l, i),
 *   s_t(l, i) = imp_t(l, i) / (max_{u != t} imp_u(l, i) + eps_t(l))
 * where imp is the profile's importance (mean |activation|), the max runs over every profiled task
 * other than t (locked or not: collateral damage is about all of them) and
 * eps_t(l) = 0.01 * mean_i imp_t(l, i) keeps neurons silent on every other task from winning on a
 * 0/0. In a small model this ratio removed a task with far less collateral damage than
 * "imp_t - lambda * others" (kept as "penalty" scoring) or raw importance (NOTES.md). Neurons with
 * imp_t = 0 are never selected. Ties break by (layer, index), so selection is deterministic.
 */
import { SecNeuronError } from "../../errors.js";
import type { Profile } from "./profile.js";

export type Scoring = "ratio" | "penalty" | "importance";

export interface LockSpec {
  /** Tasks to lock (names in the profile). */
  readonly tasks: readonly string[];
  /** Fraction of all profiled FFN neurons each task seals (default 0.05), unless `count` is set. */
  readonly ratio?: number;
  /** Exact number of neurons per task (overrides ratio). Per-task counts may be given as a map. */
  readonly count?: number | Readonly<Record<string, number>>;
  readonly scoring?: Scoring;
  /** lambda for "penalty" scoring (default 1). */
  readonly penalty?: number;
  /** Only these layers (default: every profiled layer). */
  readonly layers?: readonly number[];
}

export interface NeuronRef {
  readonly layer: number;
  readonly index: number;
}

export interface Selection {
  /** Per locked task: selected neurons sorted by (layer, index). */
  readonly perTask: ReadonlyMap<string, readonly NeuronRef[]>;
  readonly totalNeurons: number;
}

export class SelectionError extends SecNeuronError {}

export function selectNeurons(profile: Profile, spec: LockSpec): Selection {
  const scoring = spec.scoring ?? "ratio";
  const lambda = spec.penalty ?? 1;
  if (spec.tasks.length === 0) throw new SelectionError("LOCK_NO_TASKS", "no tasks to lock");
  for (const t of spec.tasks) {
    if (!profile.tasks[t]) throw new SelectionError("LOCK_UNKNOWN_TASK", `task '${t}' is not in the profile (tasks: ${Object.keys(profile.tasks).join(", ")})`, { task: t });
  }
  if (new Set(spec.tasks).size !== spec.tasks.length) throw new SelectionError("LOCK_DUPLICATE_TASK", "a task is listed twice");
  if (spec.ratio !== undefined && !(spec.ratio > 0 && spec.ratio <= 1)) throw new SelectionError("LOCK_BAD_RATIO", `ratio ${spec.ratio} must be in (0, 1]`);
  if (!(lambda >= 0 && Number.isFinite(lambda))) throw new SelectionError("LOCK_BAD_PENALTY", `penalty ${lambda} must be a finite number >= 0`);
  const nFf = profile.model.feedForwardLength;
  const layerSet = new Set<number>();
  for (const t of Object.values(profile.tasks)) for (const l of t.layers) layerSet.add(l.layer);
  let layers = [...layerSet].sort((a, b) => a - b);
  if (spec.layers) {
    for (const l of spec.layers) if (!layerSet.has(l)) throw new SelectionError("LOCK_BAD_LAYER", `layer ${l} is not profiled`);
    layers = [...spec.layers].sort((a, b) => a - b);
  }
  const totalNeurons = layers.length * nFf;

  const imp = (task: string, layer: number): readonly number[] | undefined => profile.tasks[task]!.layers.find((x) => x.layer === layer)?.importance;
  const others = (task: string) => Object.keys(profile.tasks).filter((u) => u !== task);

  const perTask = new Map<string, NeuronRef[]>();
  for (const task of spec.tasks) {
    const want = typeof spec.count === "number" ? spec.count : spec.count?.[task] ?? Math.round((spec.ratio ?? 0.05) * totalNeurons);
    if (!Number.isInteger(want) || want < 0 || want > totalNeurons) {
      throw new SelectionError("LOCK_BAD_COUNT", `neuron count ${want} for '${task}' must be an integer in 0..${totalNeurons}`);
    }
    const cands: Array<{ s: number; layer: number; index: number }> = [];
    for (const layer of layers) {
      const mine = imp(task, layer);
      if (!mine) continue;
      const rest = others(task).map((u) => imp(u, layer)).filter((x): x is readonly number[] => x !== undefined);
      let mean = 0;
      for (const v of mine) mean += v;
      mean /= mine.length;
      const eps = 0.01 * mean + Number.MIN_VALUE;
      for (let i = 0; i < nFf; i++) {
        const a = mine[i]!;
        if (a <= 0) continue;
        let o = 0;
        for (const r of rest) o = Math.max(o, r[i]!);
        const s = scoring === "ratio" ? a / (o + eps) : scoring === "penalty" ? a - lambda * o : a;
        cands.push({ s, layer, index: i });
      }
    }
    cands.sort((x, y) => y.s - x.s || x.layer - y.layer || x.index - y.index);
    const chosen = cands.slice(0, want).map(({ layer, index }) => ({ layer, index }));
    chosen.sort((x, y) => x.layer - y.layer || x.index - y.index);
    perTask.set(task, chosen);
  }
  return { perTask, totalNeurons };
}
