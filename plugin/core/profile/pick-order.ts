/**
 * Iterative (conditional) selection, the pure part: ranking candidates between rounds and the
 * pick-order profile that records the result.
 *
 * Single-unit ablation misses a skill spread over redundant neurons (zero one, its backup takes
 * over), so `profile --ablate --iterative` picks in rounds and re-measures with the previous picks
 * zeroed (edges/profile/iterative.ts). Between rounds, neurons are ranked by normalised
 * specificity:
 *   r_t(l, i) = (imp_t(l, i) / m_t) / (max_{u in others} imp_u(l, i) / m_u + 0.01)
 * where m_x is task x's mean importance over all neurons. Normalising by the task mean puts tasks
 * whose losses move on different scales (a memorised phone number against a sentence) on one
 * footing; the 0.01 keeps neurons silent elsewhere from winning on a 0/0. Neurons with
 * imp_t = 0 are never ranked. Ties break by (layer, index).
 *
 * A pick-order profile stores, for each locked task, importance PICK_ORDER_TOP - k at its k-th pick
 * and 0 elsewhere, and 0 for every unlocked task, so `selectNeurons` with any scoring returns
 * exactly a prefix of the pick order: "seal the first n picks" for every budget n.
 */
import { PROFILE_FORMAT, PROFILE_VERSION, ProfileError, type Profile } from "./profile.js";
import type { NeuronRef } from "./select.js";

/** Importance of the first pick in a pick-order profile (later picks count down from it). */
export const PICK_ORDER_TOP = 1_000_000;
/** profile.source.statistic of a pick-order profile. */
export const PICK_ORDER_STATISTIC = "pick order: importance = top - rank among the locked task's picks";

const keyOf = (l: number, i: number) => l * 1_048_576 + i;

/** Mean importance per task over every neuron of every profiled layer (never 0). */
export function taskMeans(p: Profile): Record<string, number> {
  const n = Math.max(1, Object.values(p.tasks)[0]?.layers.length ?? 0) * p.model.feedForwardLength;
  return Object.fromEntries(
    Object.entries(p.tasks).map(([t, tp]) => {
      let s = 0;
      for (const l of tp.layers) for (const v of l.importance) s += v;
      return [t, s / n || 1e-12];
    }),
  );
}

export interface RankOptions {
  /** Tasks whose importance counts against the task (default: every other profiled task). */
  readonly others?: readonly string[];
  /** Neurons never returned (already picked). */
  readonly exclude?: ReadonlyArray<NeuronRef>;
  /** Rank only these neurons (default: every neuron of every profiled layer). */
  readonly pool?: ReadonlyArray<NeuronRef>;
}

/** Neurons by normalised specificity for `task`, best first (see the module comment). */
export function rankBySpecificity(p: Profile, task: string, opts: RankOptions = {}): NeuronRef[] {
  const tp = p.tasks[task];
  if (!tp) throw new ProfileError("PROFILE_UNKNOWN_TASK", `task '${task}' is not in the profile (tasks: ${Object.keys(p.tasks).join(", ")})`, { task });
  const others = opts.others ?? Object.keys(p.tasks).filter((u) => u !== task);
  for (const u of others) if (!p.tasks[u]) throw new ProfileError("PROFILE_UNKNOWN_TASK", `task '${u}' is not in the profile`, { task: u });
  const m = taskMeans(p);
  const layerOf = (t: string, l: number) => p.tasks[t]!.layers.find((x) => x.layer === l)?.importance;
  const excluded = new Set((opts.exclude ?? []).map((r) => keyOf(r.layer, r.index)));
  const scored: Array<[number, number, number]> = [];
  const consider = (l: number, i: number, mine: readonly number[] | undefined) => {
    const a = mine?.[i] ?? 0;
    if (!(a > 0) || excluded.has(keyOf(l, i))) return;
    let o = 0;
    for (const u of others) o = Math.max(o, (layerOf(u, l)?.[i] ?? 0) / m[u]!);
    scored.push([a / m[task]! / (o + 0.01), l, i]);
  };
  if (opts.pool) {
    const seen = new Set<number>();
    for (const r of opts.pool) {
      if (seen.has(keyOf(r.layer, r.index))) continue;
      seen.add(keyOf(r.layer, r.index));
      consider(r.layer, r.index, layerOf(task, r.layer));
    }
  } else {
    for (const l of tp.layers) for (let i = 0; i < l.importance.length; i++) consider(l.layer, i, l.importance);
  }
  scored.sort((x, y) => y[0] - x[0] || x[1] - y[1] || x[2] - y[2]);
  return scored.map(([, layer, index]) => ({ layer, index }));
}

export interface PickOrderInput {
  readonly model: Profile["model"];
  /** Every task of the calibration set, in profile order. */
  readonly tasks: readonly string[];
  /** Per locked task, its picks in order. */
  readonly picks: Readonly<Record<string, readonly NeuronRef[]>>;
  /** Scored tokens per task (the profile's `tokens`). */
  readonly tokens: Readonly<Record<string, number>>;
  readonly source?: Readonly<Record<string, string>>;
}

/** The pick-order profile of an iterative selection (see the module comment). */
export function pickOrderProfile(x: PickOrderInput): Profile {
  const nL = x.model.blockCount;
  const nFf = x.model.feedForwardLength;
  const seen = new Set<number>();
  for (const [t, ps] of Object.entries(x.picks)) {
    if (!x.tasks.includes(t)) throw new ProfileError("PROFILE_UNKNOWN_TASK", `picks for '${t}', which is not a task`, { task: t });
    if (ps.length >= PICK_ORDER_TOP) throw new ProfileError("PROFILE_BAD_VALUE", `too many picks for '${t}'`);
    for (const r of ps) {
      if (!(Number.isInteger(r.layer) && r.layer >= 0 && r.layer < nL && Number.isInteger(r.index) && r.index >= 0 && r.index < nFf)) {
        throw new ProfileError("PROFILE_BAD_UNIT", `pick ${r.layer}.${r.index} of '${t}' is outside ${nL} layers x ${nFf} neurons`, { task: t });
      }
      if (seen.has(keyOf(r.layer, r.index))) throw new ProfileError("PROFILE_BAD_UNIT", `neuron ${r.layer}.${r.index} is picked twice`, { task: t });
      seen.add(keyOf(r.layer, r.index));
    }
  }
  const { headGroups: _drop, ...model } = x.model;
  return {
    format: PROFILE_FORMAT,
    version: PROFILE_VERSION,
    model,
    source: { ...x.source, statistic: PICK_ORDER_STATISTIC },
    tasks: Object.fromEntries(
      x.tasks.map((t) => {
        const layers = Array.from({ length: nL }, (_, layer) => ({ layer, importance: new Array<number>(nFf).fill(0) }));
        (x.picks[t] ?? []).forEach((r, k) => {
          layers[r.layer]!.importance[r.index] = PICK_ORDER_TOP - k;
        });
        return [t, { tokens: x.tokens[t] ?? 0, layers }];
      }),
    ),
  };
}

/** The picks of a pick-order profile, per task that has any, in pick order (to resume a run). */
export function readPickOrder(p: Profile): Record<string, NeuronRef[]> {
  if (p.source?.statistic !== PICK_ORDER_STATISTIC) throw new ProfileError("PROFILE_NOT_PICK_ORDER", "not a pick-order profile (source.statistic differs): resume from a profile written by profile --iterative");
  const out: Record<string, NeuronRef[]> = {};
  for (const [t, tp] of Object.entries(p.tasks)) {
    const xs: Array<[number, number, number]> = [];
    for (const l of tp.layers) l.importance.forEach((v, i) => v > 0 && xs.push([v, l.layer, i]));
    if (xs.length) out[t] = xs.sort((a, b) => b[0] - a[0]).map(([, layer, index]) => ({ layer, index }));
  }
  return out;
}
