/**
 * The evaluation through our own pipeline on real llama.cpp (docs/evaluation.md):
 * profile the plain model on the CALIBRATION examples, then for every lock set, selection method
 * and budget seal the model (sealModel, temporary authority), build variants (Variant.create) for
 * the admin key, each locked task's key and no key, run every held-out prompt (and a calibration
 * subset, for choosing budgets) through one llama.cpp child, and score. Plus the keyword-filter
 * baseline on the plain model. Sealed files and variants live in a temporary directory on tmpfs.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { keygen, type UserKey } from "../../core/abe/fame.js";
import { evaluateFilter, rewritePrompt, type Rewrite } from "../../core/eval/filter.js";
import { accuracy, membershipAuc, scoreContinuations, withFixedPrefix, type Accuracy, type EvalExample } from "../../core/eval/metrics.js";
import { renderChartSvg } from "../../core/eval/chart.js";
import { renderReport } from "../../core/eval/report.js";
import {
  chooseBudget,
  DEFAULT_BUDGET_RULE,
  METHODS,
  summarize,
  type BudgetChoice,
  type BudgetRule,
  type EvalResults,
  type FilterBaseline,
  type KeyScores,
  type Method,
  type RunResult,
  type TaskKind,
  type TaskScore,
} from "../../core/eval/results.js";
import { methodScoring, randomProfile, weightNormProfile } from "../../core/eval/selection.js";
import type { Profile } from "../../core/profile/profile.js";
import { initAuthority, loadAuthority, type Authority } from "../authority.js";
import { EngineProcess, validateModelFile } from "../engine/engine-process.js";
import { profileModel } from "../profile/profile-process.js";
import { ablateModel } from "../profile/ablate.js";
import { sealModel, SealError } from "../seal.js";
import { openSealedModel, unlockNodeKeys, Variant } from "../unseal.js";
import { makeScratchDir } from "../scratch-dir.js";
import { LossProcess } from "./loss-process.js";
import { EvalError, defaultKind, type TaskSet } from "./tasks.js";
import { PICK_ORDER_STATISTIC, readPickOrder } from "../../core/profile/pick-order.js";
import { ffnWeightNorms } from "./weight-norm.js";

export interface EvaluateOptions {
  readonly model: string;
  readonly tasks: Readonly<Record<string, TaskSet>>;
  /** Lock sets: each entry is a set of tasks sealed together in one experiment. */
  readonly locks: readonly (readonly string[])[];
  /** Fractions of all FFN neurons each locked task seals. */
  readonly budgets: readonly number[];
  /**
   * Also seal this fraction of the attention head groups per locked task, chosen the same way
   * (methods whose profile has head importances: specificity, largest-activation, random).
   */
  readonly headRatio?: number;
  readonly methods?: readonly Method[];
  readonly seed?: number;
  /** Write results.json, the report, chart.svg and chart.png into this directory. */
  readonly out?: string;
  /** File name of the report in `out` (default report.md). */
  readonly reportName?: string;
  /** Strict exact match (the cut continuation must equal the answer). Default false (prefix). */
  readonly strict?: boolean;
  /** Calibration examples per task run through every variant to choose budgets (default 50). */
  readonly calibEvalLimit?: number;
  readonly budgetRule?: BudgetRule;
  /** Run the keyword-filter baseline (default true). */
  readonly filter?: boolean;
  /** Parent directory of the temporary sealed models and variants (default /dev/shm). */
  readonly tmpRoot?: string;
  /** Allow a tmpRoot that is not tmpfs (variants hold decrypted weights). */
  readonly allowDisk?: boolean;
  /** Extra tokens generated beyond the longest answer (default 2). */
  readonly extraTokens?: number;
  readonly threads?: number;
  /** Use this profile instead of profiling (must be taken on the calibration data). */
  readonly profile?: Profile;
  /** The "ablation" method's profile (ablateModel on calibration data); measured when absent. */
  readonly ablationProfile?: Profile;
  /** Calibration examples per task the ablation is measured on (default 60). */
  readonly ablationExamples?: number;
  readonly onProgress?: (message: string) => void;
}

export interface EvaluateOutput {
  readonly results: EvalResults;
  readonly report: string;
  readonly svg: string;
  /** Files written (when `out` was given). */
  readonly files: readonly string[];
}

interface Prepared {
  readonly name: string;
  readonly kind: TaskKind;
  readonly heldout: readonly EvalExample[];
  readonly calib: readonly EvalExample[];
  readonly calibEval: readonly EvalExample[];
  readonly prefixed?: readonly EvalExample[];
  readonly members?: readonly EvalExample[];
  readonly nonMembers?: readonly EvalExample[];
}

function check(opts: EvaluateOptions): Method[] {
  const names = Object.keys(opts.tasks);
  if (names.length < 2) throw new EvalError("EVAL_FEW_TASKS", "need at least two tasks (specificity compares a task with the others)");
  for (const [t, s] of Object.entries(opts.tasks)) {
    if (s.heldout.length === 0) throw new EvalError("EVAL_EMPTY_TASK", `task '${t}' has no held-out examples`);
    if (s.calib.length === 0) throw new EvalError("EVAL_EMPTY_TASK", `task '${t}' has no calibration examples`);
  }
  if (opts.locks.length === 0) throw new EvalError("EVAL_NO_LOCKS", "no lock sets");
  for (const l of opts.locks) {
    if (l.length === 0) throw new EvalError("EVAL_NO_LOCKS", "an empty lock set");
    for (const t of l) if (!opts.tasks[t]) throw new EvalError("EVAL_UNKNOWN_TASK", `locked task '${t}' is not among the tasks (${names.join(", ")})`, { task: t });
  }
  if (opts.budgets.length === 0) throw new EvalError("EVAL_NO_BUDGETS", "no budgets");
  for (const b of opts.budgets) if (!(b > 0 && b <= 1)) throw new EvalError("EVAL_BAD_BUDGET", `budget ${b} must be in (0, 1]`);
  const methods = [...(opts.methods ?? METHODS)];
  for (const m of methods) if (!METHODS.includes(m)) throw new EvalError("EVAL_BAD_METHOD", `unknown method '${m}' (methods: ${METHODS.join(", ")})`);
  return methods;
}

/** Evaluate one loaded model on every task. */
async function scoreModel(
  engine: EngineProcess,
  loss: LossProcess | undefined,
  path: string,
  key: string,
  attributes: readonly string[],
  tasks: readonly Prepared[],
  maxTokens: ReadonlyMap<string, number>,
  strict: boolean,
): Promise<{ heldout: KeyScores; calib: KeyScores }> {
  await engine.loadModel(path, { contextSize: 512 });
  if (loss && tasks.some((t) => t.members)) await loss.loadModel(path, { contextSize: 512 });
  const held: Record<string, TaskScore> = {};
  const cal: Record<string, TaskScore> = {};
  for (const t of tasks) {
    const n = maxTokens.get(t.name)!;
    const run = async (xs: readonly EvalExample[]): Promise<Accuracy> => accuracy(scoreContinuations(xs, xs.length ? await engine.complete(xs.map((x) => x.prompt), { maxTokens: n, timeoutMs: 30 * 60_000 }) : [], strict));
    const acc = await run(t.heldout);
    const withPrefix = t.prefixed ? await run(t.prefixed) : undefined;
    let mia: TaskScore["mia"];
    if (loss && t.members && t.nonMembers) {
      const lm = await loss.losses(t.members);
      const ln = await loss.losses(t.nonMembers);
      mia = { auc: membershipAuc(lm, ln), members: lm.length, nonMembers: ln.length };
    }
    held[t.name] = { kind: t.kind, accuracy: acc, ...(withPrefix ? { withPrefix } : {}), ...(mia ? { mia } : {}) };
    cal[t.name] = { kind: t.kind, accuracy: await run(t.calibEval) };
  }
  return { heldout: { key, attributes, tasks: held }, calib: { key, attributes, tasks: cal } };
}

export async function evaluate(opts: EvaluateOptions): Promise<EvaluateOutput> {
  const t0 = performance.now();
  const methods = check(opts);
  const log = opts.onProgress ?? (() => {});
  const seed = opts.seed ?? 1;
  const strict = opts.strict ?? false;
  const rule = opts.budgetRule ?? DEFAULT_BUDGET_RULE;
  const hyper = validateModelFile(opts.model);
  const names = Object.keys(opts.tasks);
  const calibLimit = opts.calibEvalLimit ?? 50;
  const tasks: Prepared[] = names.map((name) => {
    const s = opts.tasks[name]!;
    const kind = s.kind ?? defaultKind(name);
    return {
      name,
      kind,
      heldout: s.heldout,
      calib: s.calib,
      calibEval: s.calib.slice(0, calibLimit),
      ...(kind === "pii" ? { prefixed: withFixedPrefix(s.heldout).filter((x) => x.answer.length > 0) } : {}),
      ...(s.members && s.nonMembers && s.members.length && s.nonMembers.length ? { members: s.members, nonMembers: s.nonMembers } : {}),
    };
  });

  // 1. Profile the plain model on calibration data only (prompt + answer: the answer tokens are where the skill acts).
  const tp = performance.now();
  const profile =
    opts.profile ??
    (await profileModel({
      modelPath: opts.model,
      tasks: Object.fromEntries(tasks.map((t) => [t.name, t.calib.map((x) => x.prompt + x.answer)])),
      threads: opts.threads ?? 1,
      source: { tool: "secneuron eval", split: "calibration" },
    }));
  let ablation = opts.ablationProfile;
  if (methods.includes("ablation") && !ablation) {
    const n = opts.ablationExamples ?? 60;
    log(`ablation profile: zeroing each unit in llama.cpp, ${n} calibration examples per task (long: minutes per thousand units)`);
    let last = 0;
    ablation = (
      await ablateModel({
        modelPath: opts.model,
        tasks: Object.fromEntries(tasks.map((t) => [t.name, t.calib.slice(0, n)])),
        units: opts.headRatio ? "all" : "ffn",
        threads: opts.threads ?? 1,
        source: { split: "calibration", examplesPerTask: String(n) },
        onProgress: (p) => {
          if (performance.now() - last < 10_000) return;
          last = performance.now();
          log(`ablation ${p.done}/${p.total} units`);
        },
      })
    ).profile;
  }
  if (ablation) {
    for (const t of names) if (!ablation.tasks[t]) throw new EvalError("EVAL_BAD_PROFILE", `the ablation profile has no task '${t}'`);
    if (ablation.model.blockCount !== hyper.blockCount || ablation.model.feedForwardLength !== hyper.feedForwardLength) {
      throw new EvalError("EVAL_BAD_PROFILE", `the ablation profile is for ${ablation.model.blockCount} layers x ${ablation.model.feedForwardLength} neurons, the model has ${hyper.blockCount} x ${hyper.feedForwardLength}`);
    }
    // A pick-order profile (profile --iterative) seals the first n picks: a budget past its picks,
    // or a task it holds no picks for, would seal less than asked without a word.
    if (methods.includes("ablation") && ablation.source?.statistic === PICK_ORDER_STATISTIC) {
      const need = Math.max(1, Math.round(Math.max(...opts.budgets) * hyper.blockCount * hyper.feedForwardLength));
      const order = readPickOrder(ablation);
      for (const t of new Set(opts.locks.flat())) {
        const picks = order[t]?.length ?? 0;
        if (picks < need) throw new EvalError("EVAL_BUDGET_BEYOND_PICKS", `the pick-order ablation profile holds ${picks} picks for '${t}', but the largest budget seals ${need} neurons per task (run more rounds, or lower --budgets)`, { task: t });
      }
    }
    // Another file of the same network (a quantization of the profiled model) is allowed, as in seal.
    if (ablation.model.sha256 && profile.model.sha256 && ablation.model.sha256 !== profile.model.sha256) {
      log("note: the ablation profile was taken on another file of this network (SHA-256 differs); sealing with it as asked");
      const { sha256: _other, ...model } = ablation.model;
      ablation = { ...ablation, model };
    }
  }
  const profileSeconds = (performance.now() - tp) / 1000;
  log(`profiled ${names.length} tasks on calibration data in ${profileSeconds.toFixed(1)} s`);

  const tmp = makeScratchDir(opts.tmpRoot ?? "/dev/shm", "secneuron-eval-");
  const engine = await EngineProcess.start({ threads: opts.threads ?? 1, timeoutMs: 30 * 60_000 });
  const loss = tasks.some((t) => t.members) ? await LossProcess.start() : undefined;
  try {
    // 2. The plain model: held-out and calibration scores, answer lengths, the filter baseline.
    await engine.loadModel(opts.model, { contextSize: 512 });
    const maxTokens = new Map<string, number>();
    for (const t of tasks) {
      let m = 1;
      for (const x of [...t.heldout, ...t.calibEval]) m = Math.max(m, (await engine.tokenize(x.answer)).length);
      maxTokens.set(t.name, m + (opts.extraTokens ?? 2));
    }
    const plain = await scoreModel(engine, loss, opts.model, "plain", [], tasks, maxTokens, strict);
    log(`plain model: ${tasks.map((t) => `${t.name} ${(plain.heldout.tasks[t.name]!.accuracy.rate * 100).toFixed(1)}%`).join(", ")}`);

    const filter: FilterBaseline[] = [];
    if (opts.filter ?? true) {
      await engine.loadModel(opts.model, { contextSize: 512 });
      const calibPrompts = Object.fromEntries(tasks.map((t) => [t.name, t.calib.map((x) => x.prompt)]));
      const heldPrompts = Object.fromEntries(tasks.map((t) => [t.name, t.heldout.map((x) => x.prompt)]));
      for (const task of [...new Set(opts.locks.flat())]) {
        const { result, filter: f } = evaluateFilter(task, calibPrompts, heldPrompts);
        const t = tasks.find((x) => x.name === task)!;
        const accuracyAfterRewrite: Record<string, Accuracy> = {};
        for (const how of ["zero-width", "homoglyph"] as Rewrite[]) {
          const xs = t.heldout.map((x) => ({ prompt: rewritePrompt(f, x.prompt, how), answer: x.answer }));
          accuracyAfterRewrite[how] = accuracy(scoreContinuations(xs, await engine.complete(xs.map((x) => x.prompt), { maxTokens: maxTokens.get(task)!, timeoutMs: 30 * 60_000 }), strict));
        }
        filter.push({ ...result, accuracyAfterRewrite });
      }
    }

    // 3. Seal under a temporary authority and evaluate each key's variant.
    const authDir = join(tmp, "authority");
    initAuthority(authDir, { now: Date.now() });
    const authority: Authority = loadAuthority(authDir);
    const userKeys = new Map<string, UserKey>();
    const userKey = (attrs: readonly string[]): UserKey => {
      const k = attrs.join(",");
      if (!userKeys.has(k)) userKeys.set(k, keygen(authority.publicParams, authority.masterKey, [...attrs]));
      return userKeys.get(k)!;
    };
    let weightNorms: Map<number, number[]> | undefined;
    const methodProfile = (m: Method): Profile => {
      if (m === "random") return randomProfile(profile, seed);
      if (m === "weight-norm") return weightNormProfile(profile, (weightNorms ??= ffnWeightNorms(opts.model, hyper.blockCount)));
      if (m === "ablation") return ablation!;
      return profile;
    };
    const totalNeurons = hyper.blockCount * hyper.feedForwardLength;
    const runs: RunResult[] = [];
    const chosen: BudgetChoice[] = [];
    let n = 0;
    for (const lock of opts.locks) {
      const keys: Array<{ key: string; attrs: string[] | null }> = [
        { key: "admin", attrs: ["admin"] },
        ...lock.map((t) => ({ key: `task:${t}`, attrs: [`task:${t}`] })),
        { key: "none", attrs: null },
      ];
      for (const method of methods) {
        const mp = methodProfile(method);
        const mine: RunResult[] = [];
        for (const budget of [...opts.budgets].sort((a, b) => a - b)) {
          const count = Math.max(1, Math.round(budget * totalNeurons));
          const sealed = join(tmp, `sealed-${n++}.sn.gguf`);
          let sealedNeurons = 0;
          const heldout: KeyScores[] = [];
          const calib: KeyScores[] = [];
          try {
            const summary = await sealModel({ model: opts.model, out: sealed, profile: mp, lock: { tasks: lock, count, scoring: methodScoring(method), ...(opts.headRatio && mp.model.headGroups ? { headRatio: opts.headRatio } : {}) }, authority });
            sealedNeurons = summary.sealedNeurons;
            const sm = openSealedModel(sealed);
            for (const k of keys) {
              const nodeKeys = k.attrs ? unlockNodeKeys(sm, userKey(k.attrs)) : new Map<number, Uint8Array>();
              const vpath = join(tmp, `variant-${n}-${k.key.replace(/[^a-z0-9_-]/gi, "_")}.gguf`);
              let v: Variant | undefined;
              try {
                v = await Variant.create(sm, vpath, nodeKeys, { allowDisk: opts.allowDisk });
              } finally {
                for (const x of nodeKeys.values()) x.fill(0);
              }
              try {
                const s = await scoreModel(engine, loss, v.path, k.key, k.attrs ?? [], tasks, maxTokens, strict);
                heldout.push(s.heldout);
                calib.push(s.calib);
              } finally {
                await engine.unloadModel().catch(() => {});
                await v.dispose();
              }
            }
          } catch (e) {
            if (!(e instanceof SealError && e.code === "SEAL_NOTHING_SELECTED")) throw e;
            // Nothing to seal (every candidate has zero importance): every key gets the plain model.
            for (const k of keys) {
              heldout.push({ ...plain.heldout, key: k.key, attributes: k.attrs ?? [] });
              calib.push({ ...plain.calib, key: k.key, attributes: k.attrs ?? [] });
            }
          } finally {
            rmSync(sealed, { force: true });
          }
          const r: RunResult = {
            lock: [...lock],
            method,
            budget,
            neuronsPerTask: count,
            sealedNeurons,
            heldout,
            calib,
            summary: { heldout: summarize(lock, heldout, plain.heldout), calib: summarize(lock, calib, plain.calib) },
          };
          runs.push(r);
          mine.push(r);
          log(`lock ${lock.join("+")} ${method} ${(budget * 100).toFixed(2)}%: ${sealedNeurons} neurons sealed; held-out locked accuracy ${(r.summary.heldout.lockedAccuracy * 100).toFixed(1)}%, authorized loss ${(r.summary.heldout.authorizedLoss * 100).toFixed(1)}%`);
        }
        const c = chooseBudget(mine, plain.calib, rule);
        if (c) chosen.push(c);
      }
    }

    const results: EvalResults = {
      format: "secneuron-eval",
      version: 1,
      model: { path: basename(opts.model), ...(profile.model.sha256 ? { sha256: profile.model.sha256 } : {}), blockCount: hyper.blockCount, feedForwardLength: hyper.feedForwardLength },
      config: { locks: opts.locks.map((l) => [...l]), budgets: [...opts.budgets].sort((a, b) => a - b), methods, seed, strict, budgetRule: rule, ...(opts.headRatio ? { headRatio: opts.headRatio } : {}) },
      tasks: Object.fromEntries(
        tasks.map((t) => [t.name, { kind: t.kind, heldout: t.heldout.length, calib: t.calib.length, calibEvaluated: t.calibEval.length, members: t.members?.length ?? 0, nonMembers: t.nonMembers?.length ?? 0 }]),
      ),
      plain,
      runs,
      chosen,
      filter,
      seconds: { profile: profileSeconds, total: (performance.now() - t0) / 1000 },
    };
    const report = renderReport(results);
    const svg = renderChartSvg(results);
    const files: string[] = [];
    if (opts.out) files.push(...(await writeEvalOutputs(opts.out, results, report, svg, opts.reportName)));
    return { results, report, svg, files };
  } finally {
    await engine.dispose();
    await loss?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Render an SVG to PNG (resvg, system fonts). */
export async function svgToPng(svg: string): Promise<Buffer> {
  const { Resvg } = await import("@resvg/resvg-js");
  return Buffer.from(new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" }, background: "white" }).render().asPng());
}

/**
 * Write the report (`reportName`, default report.md), results.json, chart.svg and chart.png into
 * `dir`; returns their paths.
 */
export async function writeEvalOutputs(dir: string, results: EvalResults, report: string, svg: string, reportName = "report.md"): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const files = { json: join(dir, "results.json"), md: join(dir, reportName), svg: join(dir, "chart.svg"), png: join(dir, "chart.png") };
  writeFileSync(files.json, JSON.stringify(results, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n");
  writeFileSync(files.md, report + "\n");
  writeFileSync(files.svg, svg + "\n");
  writeFileSync(files.png, await svgToPng(svg));
  return Object.values(files);
}
