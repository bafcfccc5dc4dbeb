/**
 * `secneuron eval`: the evaluation through our own pipeline on real llama.cpp (docs/evaluation.md).
 * Profiles the plain model on calibration data, seals it per lock set, method and budget under a
 * temporary authority, runs held-out prompts through each key's variant, writes report.md,
 * chart.png (+ chart.svg) and results.json.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, extname } from "node:path";
import { UsageError } from "../errors.js";
import { METHODS, type Method, type TaskKind } from "../core/eval/results.js";
import { parseProfileText } from "../core/profile/profile.js";
import { evaluate } from "../edges/eval/evaluate.js";
import { loadTaskDir } from "../edges/eval/tasks.js";
import { requiredOption, type Command } from "./args.js";

function readProfileFile(path: string) {
  if (!existsSync(path)) throw new UsageError("CLI_USAGE", `eval: --ablation-profile ${path} does not exist`);
  return parseProfileText(readFileSync(path, "utf8"));
}

function list(v: unknown): string[] {
  return String(v)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function numbers(v: unknown, what: string): number[] {
  const xs = list(v).map(Number);
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x))) throw new UsageError("CLI_USAGE", `eval: --${what} must be a comma-separated list of numbers, got '${String(v)}'`);
  return xs;
}

function intOption(values: Record<string, unknown>, key: string): number | undefined {
  if (values[key] === undefined) return undefined;
  const n = Number(values[key]);
  if (!Number.isInteger(n) || n < 0) throw new UsageError("CLI_USAGE", `eval: --${key} must be a non-negative integer, got '${String(values[key])}'`);
  return n;
}

export const evalCommand: Command = {
  name: "eval",
  summary: "evaluate sealing on real llama.cpp: locked-task accuracy, collateral damage, baselines",
  help: `Usage: secneuron eval --model m.gguf --tasks <dir> [--lock pii,abuse] [--budgets 0.01,0.02,0.05]
         [--methods ablation,specificity,random,largest-activation,weight-norm] [--seed N] [--out report.md] [--json]

Profiles the plain model on the calibration examples, then for each lock set, selection method
and budget seals the model under a temporary authority (files on /dev/shm), builds the variants
of the admin key, each locked task's key and no key, runs every held-out prompt greedily in
llama.cpp (1 thread) and scores exact matches. Budgets are chosen on calibration data only.

The task directory holds heldout-<task>.jsonl and calib-<task>.jsonl (lines {"prompt": ..., "answer": ...}),
optionally <task>-members.jsonl and <task>-nonmembers.jsonl (membership inference). Tasks named
pii and abuse get the PII extraction and abuse completion metrics.

Options:
  --model <file>        plain GGUF model (F32/F16/BF16/Q8_0/Q4_0 for the weight-norm baseline)
  --tasks <dir>         task files (see above)
  --only <t1,t2>        evaluate only these tasks (default: every task in the directory)
  --lock <t1,t2>        a set of tasks to lock together; repeat for several lock sets
                        (default: every task named pii or abuse, one set each)
  --budgets <list>      fractions of all FFN neurons per locked task (default 0.01,0.02,0.05)
  --head-ratio <f>      also seal this fraction of the attention head groups per locked task
  --methods <list>      selection methods (default: all five). ablation: specificity on the loss
                        increase when each unit is zeroed in llama.cpp (measured on calibration
                        data: about 0.7 s per unit on this model, 2 threads); specificity: on
                        mean |activation|; random, largest-activation, weight-norm: baselines
  --ablation-profile <file>  reuse an ablation profile (secneuron profile --ablate, calibration data)
  --ablation-examples <n>    calibration examples per task for the ablation (default 60)
  --threads <n>         llama.cpp threads for profiling and ablation (default 1)
  --seed <n>            seed of the random baseline (default 1)
  --out <file.md|dir>   report path (default eval-report/report.md); chart.png, chart.svg and
                        results.json go next to it
  --heldout-limit <n>   first n held-out examples per task (default all)
  --heldout-seed <n>    draw the held-out examples in a seeded random order before the limit
                        (a fresh sample of never-trained prompts; default: file order)
  --calib-limit <n>     first n calibration examples per task for profiling (default all)
  --calib-eval <n>      calibration examples per task run through each variant to choose the budget (default 50)
  --strict              the continuation (up to a newline) must equal the answer (default: start with it)
  --no-filter           skip the keyword-filter baseline
  --tmp <dir>           where sealed models and variants go (default /dev/shm; must be tmpfs)
  --json                print results.json to stdout instead of the summary

Example:
  secneuron eval --model examples/multitask/models/multitask-q8_0.gguf --tasks examples/multitask/data \\
    --lock pii --lock abuse --budgets 0.005,0.01,0.02,0.05 --out eval/report.md`,
  options: {
    model: { type: "string" },
    tasks: { type: "string" },
    only: { type: "string" },
    lock: { type: "string", multiple: true },
    budgets: { type: "string" },
    "head-ratio": { type: "string" },
    methods: { type: "string" },
    seed: { type: "string" },
    out: { type: "string" },
    "heldout-limit": { type: "string" },
    "heldout-seed": { type: "string" },
    "calib-limit": { type: "string" },
    "calib-eval": { type: "string" },
    strict: { type: "boolean" },
    "no-filter": { type: "boolean" },
    tmp: { type: "string" },
    "ablation-profile": { type: "string" },
    "ablation-examples": { type: "string" },
    threads: { type: "string" },
  },
  async run(values, positionals, io) {
    if (positionals.length) throw new UsageError("CLI_USAGE", `eval: unexpected argument '${positionals[0]}'`);
    const model = requiredOption(values, "model", "eval");
    const taskDir = requiredOption(values, "tasks", "eval");
    const tasks = loadTaskDir(taskDir, {
      ...(values.only !== undefined ? { tasks: list(values.only) } : {}),
      heldoutLimit: intOption(values, "heldout-limit"),
      calibLimit: intOption(values, "calib-limit"),
      heldoutSeed: intOption(values, "heldout-seed"),
    });
    const locks = ((values.lock as string[] | undefined) ?? []).map(list);
    if (locks.length === 0) {
      for (const [t, s] of Object.entries(tasks)) if ((s.kind as TaskKind) !== "exact") locks.push([t]);
      if (locks.length === 0) throw new UsageError("CLI_USAGE", "eval: --lock is required (no task is named pii or abuse)");
    }
    const methods = values.methods !== undefined ? list(values.methods) : [...METHODS];
    for (const m of methods) if (!METHODS.includes(m as Method)) throw new UsageError("CLI_USAGE", `eval: unknown method '${m}' (methods: ${METHODS.join(", ")})`);
    const seed = values.seed !== undefined ? intOption(values, "seed")! : 1;
    const out = String(values.out ?? "eval-report/report.md");
    const isFile = extname(out).toLowerCase() === ".md";
    const calibEval = intOption(values, "calib-eval");
    const { results, files } = await evaluate({
      model,
      tasks,
      locks,
      budgets: values.budgets !== undefined ? numbers(values.budgets, "budgets") : [0.01, 0.02, 0.05],
      ...(values["head-ratio"] !== undefined ? { headRatio: numbers(values["head-ratio"], "head-ratio")[0]! } : {}),
      methods: methods as Method[],
      seed,
      out: isFile ? dirname(out) : out,
      ...(isFile ? { reportName: basename(out) } : {}),
      strict: values.strict === true,
      filter: values["no-filter"] !== true,
      ...(calibEval !== undefined ? { calibEvalLimit: calibEval } : {}),
      ...(values.tmp !== undefined ? { tmpRoot: String(values.tmp) } : {}),
      ...(values["ablation-profile"] !== undefined ? { ablationProfile: readProfileFile(String(values["ablation-profile"])) } : {}),
      ...(intOption(values, "ablation-examples") ? { ablationExamples: intOption(values, "ablation-examples") } : {}),
      ...(intOption(values, "threads") ? { threads: intOption(values, "threads") } : {}),
      onProgress: values.json ? undefined : (m) => io.err(m),
    });
    if (values.json) {
      io.out(JSON.stringify(results, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v)));
      return 0;
    }
    for (const c of results.chosen) {
      const r = results.runs.find((x) => x.lock.join(",") === c.lock.join(",") && x.method === c.method && x.budget === c.budget)!;
      io.out(
        `lock ${c.lock.join("+")}  ${c.method.padEnd(18)} budget ${(c.budget * 100).toFixed(2)}%${c.metTarget ? " " : "*"}  locked-task accuracy ${(r.summary.heldout.lockedAccuracy * 100).toFixed(1)}%  authorized loss ${(r.summary.heldout.authorizedLoss * 100).toFixed(1)}%`,
      );
    }
    io.out(`wrote ${files.join(", ")}`);
    return 0;
  },
};
