/**
 * Iterative (conditional) ablation selection in llama.cpp: pick neurons in rounds, each round
 * re-measured with the previous picks zeroed, so backups of redundant neurons show up.
 *
 *   start:      per locked task, the top `start` fraction of FFN neurons by activation
 *               specificity (an activation profile of the calibration examples, taken here);
 *   each round: the `candidates` best remaining neurons per locked task (activation specificity)
 *               are ablated with the current selection kept zeroed (ablateModel `zeroed` and
 *               `candidates`); per locked task, the `perRound` candidates with the highest
 *               normalised specificity of their loss increases (against the unlocked tasks only:
 *               the locked ones are already losing) join the selection.
 *
 * The result is a pick-order profile (core/profile/pick-order.ts): sealing with any budget takes
 * a prefix of each locked task's picks. Ranking is core/profile/pick-order.ts `rankBySpecificity`.
 */
import { EngineError } from "../../errors.js";
import { pickOrderProfile, rankBySpecificity } from "../../core/profile/pick-order.js";
import { ProfileError, type Profile } from "../../core/profile/profile.js";
import type { NeuronRef } from "../../core/profile/select.js";
import { validateModelFile } from "../engine/engine-process.js";
import { ablateModel } from "./ablate.js";
import { profileModel, sha256File, type ScoreItem } from "./profile-process.js";

export interface IterativeOptions {
  readonly modelPath: string;
  /** Every task's calibration examples (locked and unlocked: collateral damage is measured on all). */
  readonly tasks: Readonly<Record<string, readonly ScoreItem[]>>;
  /** Tasks to select neurons for. */
  readonly lock: readonly string[];
  /** Fraction of all FFN neurons each locked task starts with, by activation specificity (default 0.05; 0 = none). */
  readonly start?: number;
  readonly rounds?: number;
  /** Neurons each locked task gains per round (default 40). */
  readonly perRound?: number;
  /** Neurons per locked task ablated in a round (default 250). */
  readonly candidates?: number;
  /** Activation profile to rank candidates by (default: profile the calibration prompt+answer texts here). */
  readonly activation?: Profile;
  /** Continue a run: its picks (readPickOrder of its profile) and rounds done; `start` is then ignored. */
  readonly resume?: { readonly picks: Readonly<Record<string, readonly NeuronRef[]>>; readonly rounds: number };
  readonly threads?: number;
  readonly contextSize?: number;
  readonly scratchDir?: string;
  readonly hashModel?: boolean;
  readonly source?: Readonly<Record<string, string>>;
  readonly workerPath?: string;
  readonly signal?: AbortSignal;
  /** After every round: the pick-order profile so far (write it to keep partial work). */
  readonly onRound?: (r: { round: number; rounds: number; profile: Profile; selected: Record<string, number>; seconds: number }) => void | Promise<void>;
  readonly onProgress?: (p: { round: number; done: number; total: number }) => void;
}

export interface IterativeResult {
  readonly profile: Profile;
  readonly selected: Record<string, number>;
  readonly seconds: number;
}

function positive(v: number | undefined, dflt: number, what: string, allowZero = false): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new ProfileError("PROFILE_BAD_OPTION", `${what} must be an integer >= ${allowZero ? 0 : 1}, got ${n}`);
  return n;
}

export async function iterativeSelection(opts: IterativeOptions): Promise<IterativeResult> {
  const t0 = performance.now();
  const names = Object.keys(opts.tasks);
  if (opts.lock.length === 0) throw new ProfileError("PROFILE_NO_TASKS", "no tasks to lock");
  for (const t of opts.lock) if (!names.includes(t)) throw new ProfileError("PROFILE_UNKNOWN_TASK", `locked task '${t}' has no calibration examples (tasks: ${names.join(", ")})`, { task: t });
  if (new Set(opts.lock).size !== opts.lock.length) throw new ProfileError("PROFILE_BAD_OPTION", "a locked task is listed twice");
  const unlocked = names.filter((t) => !opts.lock.includes(t));
  if (unlocked.length === 0) throw new ProfileError("PROFILE_BAD_OPTION", "every task is locked: give calibration examples of at least one task that must keep working");
  const start = opts.start ?? 0.05;
  if (!(start >= 0 && start < 1)) throw new ProfileError("PROFILE_BAD_OPTION", `start fraction must be in [0, 1), got ${start}`);
  const rounds = positive(opts.rounds, 4, "rounds", true);
  const perRound = positive(opts.perRound, 40, "picks per round");
  const nCand = positive(opts.candidates, 250, "candidates per round");
  if (nCand < perRound) throw new ProfileError("PROFILE_BAD_OPTION", `candidates per round (${nCand}) must be at least the picks per round (${perRound})`);

  const hp = validateModelFile(opts.modelPath);
  const hashing = opts.hashModel === false ? undefined : sha256File(opts.modelPath);
  hashing?.catch(() => {});
  const act =
    opts.activation ??
    (await profileModel({
      modelPath: opts.modelPath,
      tasks: Object.fromEntries(names.map((t) => [t, opts.tasks[t]!.map((x) => x.prompt + x.answer)])),
      threads: opts.threads ?? 1,
      hashModel: false,
      ...(opts.workerPath ? { workerPath: opts.workerPath } : {}),
    }));
  if (act.source?.statistic !== undefined) throw new ProfileError("PROFILE_NOT_ACTIVATION", `the activation profile is not an activation profile (source.statistic: ${act.source.statistic})`);
  if (act.model.blockCount !== hp.blockCount || act.model.feedForwardLength !== hp.feedForwardLength) {
    throw new ProfileError("PROFILE_MODEL_MISMATCH", `the activation profile is for ${act.model.blockCount} x ${act.model.feedForwardLength} neurons, the model has ${hp.blockCount} x ${hp.feedForwardLength}`);
  }
  for (const t of names) if (!act.tasks[t]) throw new ProfileError("PROFILE_UNKNOWN_TASK", `the activation profile has no task '${t}'`, { task: t });
  const others = (t: string) => names.filter((u) => u !== t);

  const picks: Record<string, NeuronRef[]> = Object.fromEntries(opts.lock.map((t) => [t, []]));
  const chosen: NeuronRef[] = [];
  if (opts.resume) {
    for (const [t, ps] of Object.entries(opts.resume.picks)) {
      if (!opts.lock.includes(t)) throw new ProfileError("PROFILE_BAD_OPTION", `the resumed selection has picks for '${t}', which is not locked`, { task: t });
      picks[t] = [...ps];
      chosen.push(...ps);
    }
  } else {
    const n0 = Math.round(start * hp.blockCount * hp.feedForwardLength);
    for (const t of opts.lock) {
      picks[t] = rankBySpecificity(act, t, { others: others(t), exclude: chosen }).slice(0, n0);
      chosen.push(...picks[t]!);
    }
  }
  const tokens: Record<string, number> = Object.fromEntries(names.map((t) => [t, act.tasks[t]!.tokens]));
  const sha256 = hashing ? await hashing : undefined;
  const model = { ...(sha256 ? { sha256 } : {}), architecture: hp.architecture, blockCount: hp.blockCount, feedForwardLength: hp.feedForwardLength };
  const source = (round: number) => ({
    tool: "secneuron profile --ablate --iterative (llama.cpp, conditional ablation in rounds)",
    lock: opts.lock.join(","),
    start: String(start),
    perRound: String(perRound),
    candidates: String(nCand),
    rounds: String(round),
    ...opts.source,
  });
  const count = () => Object.fromEntries(opts.lock.map((t) => [t, picks[t]!.length]));
  const firstRound = opts.resume?.rounds ?? 0;
  let profile = pickOrderProfile({ model, tasks: names, picks, tokens, source: source(firstRound) });
  for (let r = 0; r < rounds; r++) {
    const rt = performance.now();
    const pool = new Map<string, NeuronRef>();
    for (const t of opts.lock) for (const x of rankBySpecificity(act, t, { others: others(t), exclude: chosen }).slice(0, nCand)) pool.set(`${x.layer}.${x.index}`, x);
    if (pool.size === 0) break; // nothing left that any locked task uses
    const { profile: abl } = await ablateModel({
      modelPath: opts.modelPath,
      tasks: opts.tasks,
      units: "ffn",
      threads: opts.threads ?? 1,
      hashModel: false,
      ...(opts.contextSize ? { contextSize: opts.contextSize } : {}),
      ...(opts.scratchDir ? { scratchDir: opts.scratchDir } : {}),
      ...(opts.workerPath ? { workerPath: opts.workerPath } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      zeroed: chosen.map((x) => ({ kind: "ffn" as const, ...x })),
      candidates: [...pool.values()].map((x) => ({ kind: "ffn" as const, ...x })),
      onProgress: (p) => opts.onProgress?.({ round: r, done: p.done, total: p.total }),
    });
    let gained = 0;
    for (const t of opts.lock) {
      const add = rankBySpecificity(abl, t, { others: unlocked, exclude: chosen, pool: [...pool.values()] }).slice(0, perRound);
      picks[t]!.push(...add);
      chosen.push(...add);
      gained += add.length;
    }
    profile = pickOrderProfile({ model, tasks: names, picks, tokens, source: source(firstRound + r + 1) });
    await opts.onRound?.({ round: r + 1, rounds, profile, selected: count(), seconds: (performance.now() - rt) / 1000 });
    if (gained === 0) break; // no candidate's removal hurts a locked task any more
  }
  if (opts.signal?.aborted) throw new EngineError("ABLATE_ABORTED", "iterative selection stopped");
  return { profile, selected: count(), seconds: (performance.now() - t0) / 1000 };
}
