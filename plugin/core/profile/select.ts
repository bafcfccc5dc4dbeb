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
 *
 * Attention head groups (the second neuron kind, profile `heads`) are scored the same way over
 * groups, per layer, and selected separately: `headRatio` / `headCount` (default none).
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
  /**
   * Fraction of all profiled attention head groups each task seals (default 0: no heads), unless
   * `headCount` is set. Needs a profile with head importances (`model.headGroups`).
   */
  readonly headRatio?: number;
  /** Exact number of head groups per task (overrides headRatio); per-task counts as a map. */
  readonly headCount?: number | Readonly<Record<string, number>>;
}

/** An FFN neuron (index = neuron) or, in head lists, an attention head group (index = group). */
export interface NeuronRef {
  readonly layer: number;
  readonly index: number;
}

export interface Selection {
  /** Per locked task: selected FFN neurons sorted by (layer, index). */
  readonly perTask: ReadonlyMap<string, readonly NeuronRef[]>;
  /** Per locked task: selected attention head groups sorted by (layer, group); absent = none. */
  readonly perTaskHeads?: ReadonlyMap<string, readonly NeuronRef[]>;
  readonly totalNeurons: number;
  /** Head groups in the selectable layers (0 when the profile has no head importances). */
  readonly totalHeads?: number;
}

export class SelectionError extends SecNeuronError {}

type Unit = "neuron" | "head";

export function selectNeurons(profile: Profile, spec: LockSpec): Selection {
  const scoring = spec.scoring ?? "ratio";
  const lambda = spec.penalty ?? 1;
  if (spec.tasks.length === 0) throw new SelectionError("LOCK_NO_TASKS", "no tasks to lock");
  for (const t of spec.tasks) {
    if (!profile.tasks[t]) throw new SelectionError("LOCK_UNKNOWN_TASK", `task '${t}' is not in the profile (tasks: ${Object.keys(profile.tasks).join(", ")})`, { task: t });
  }
  if (new Set(spec.tasks).size !== spec.tasks.length) throw new SelectionError("LOCK_DUPLICATE_TASK", "a task is listed twice");
  if (spec.ratio !== undefined && !(spec.ratio > 0 && spec.ratio <= 1)) throw new SelectionError("LOCK_BAD_RATIO", `ratio ${spec.ratio} must be in (0, 1]`);
  if (spec.headRatio !== undefined && !(spec.headRatio >= 0 && spec.headRatio <= 1)) throw new SelectionError("LOCK_BAD_RATIO", `head ratio ${spec.headRatio} must be in [0, 1]`);
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
  const headGroups = profile.model.headGroups ?? 0;
  const totalHeads = layers.length * headGroups;
  const wantHeads = spec.headCount !== undefined || (spec.headRatio ?? 0) > 0;
  if (wantHeads && headGroups === 0) throw new SelectionError("LOCK_NO_HEADS", "head selection asked for, but the profile has no head importances (model.headGroups)");

  const stats = (unit: Unit, task: string, layer: number): readonly number[] | undefined => {
    const l = profile.tasks[task]!.layers.find((x) => x.layer === layer);
    return unit === "neuron" ? l?.importance : l?.heads;
  };
  const others = (task: string) => Object.keys(profile.tasks).filter((u) => u !== task);

  const pick = (unit: Unit, task: string, want: number, width: number): NeuronRef[] => {
    const cands: Array<{ s: number; layer: number; index: number }> = [];
    for (const layer of layers) {
      const mine = stats(unit, task, layer);
      if (!mine) continue;
      const rest = others(task).map((u) => stats(unit, u, layer)).filter((x): x is readonly number[] => x !== undefined);
      let mean = 0;
      for (const v of mine) mean += v;
      mean /= mine.length;
      const eps = 0.01 * mean + Number.MIN_VALUE;
      for (let i = 0; i < width; i++) {
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
    return chosen;
  };

  const perTask = new Map<string, NeuronRef[]>();
  const perTaskHeads = new Map<string, NeuronRef[]>();
  for (const task of spec.tasks) {
    const want = typeof spec.count === "number" ? spec.count : spec.count?.[task] ?? Math.round((spec.ratio ?? 0.05) * totalNeurons);
    if (!Number.isInteger(want) || want < 0 || want > totalNeurons) {
      throw new SelectionError("LOCK_BAD_COUNT", `neuron count ${want} for '${task}' must be an integer in 0..${totalNeurons}`);
    }
    perTask.set(task, pick("neuron", task, want, nFf));
    const wantH = typeof spec.headCount === "number" ? spec.headCount : spec.headCount?.[task] ?? Math.round((spec.headRatio ?? 0) * totalHeads);
    if (!Number.isInteger(wantH) || wantH < 0 || wantH > totalHeads) {
      throw new SelectionError("LOCK_BAD_COUNT", `head group count ${wantH} for '${task}' must be an integer in 0..${totalHeads}`);
    }
    perTaskHeads.set(task, wantH > 0 ? pick("head", task, wantH, headGroups) : []);
  }
  return { perTask, perTaskHeads, totalNeurons, totalHeads };
}
