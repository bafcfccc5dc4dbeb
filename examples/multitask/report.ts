/**
 * One command for every committed evaluation report of the multi-task model (issue 6):
 * `npm run multitask:report` (after `npm run build`; writes examples/multitask/data first if it is
 * missing). Each experiment is one `secneuron eval` run, printed before it starts so it can be
 * rerun alone; F16 and the K-quant run side by side (one llama.cpp thread each).
 *
 * The ablation method reads the committed ablation profile (examples/multitask/profiles/
 * ablation-f16.json, taken on the BASE model's calibration split: the model as trained, before
 * separate.py taught it to do without each task's selection; the profile is the separation's
 * input, see examples/multitask/README.md); `--ablate` measures it again on the base model first
 * (about 20 minutes: `secneuron profile --ablate`) and the iterative pick orders (about 15
 * minutes each: `secneuron profile --ablate --iterative`). The acceptance check (`acceptance-*`:
 * ablation at 5%, the four locks) runs on every never-trained held-out prompt; the curves and
 * baselines on a seeded draw of 100 per task (`--heldout-seed`, default 2026): pass another seed
 * for a fresh sample.
 *
 * `--iterative` re-measures only the iterative pick order.
 *
 * CLI: node dist/examples/multitask/report.js [--ablate | --iterative] [--heldout-seed N] [--only name,name] [--summary-only]
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { authorized } from "../../plugin/core/eval/results.js";
import { makeScratchDir } from "../../plugin/edges/scratch-dir.js";
import { intFlag, strictArgs, usageError } from "./cli-args.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLI = `${ROOT}bin/secneuron.js`;
const DATA = "examples/multitask/data";
const MODELS = { f16: "examples/multitask/models/multitask-f16.gguf", q4_k_m: "examples/multitask/models/multitask-q4_k_m.gguf" } as const;
/** The model as trained, before separation: what the committed profiles were measured on. */
const BASE = "examples/multitask/models/multitask-base-f16.gguf";
const ABLATION = "examples/multitask/profiles/ablation-f16.json";
/** Pick order of iterative ablation for PII + abuse (`secneuron profile --ablate --iterative`, 4 rounds). */
const ITERATIVE = "examples/multitask/profiles/iterative-pii-abuse-f16.json";
const TASKS = ["text", "arith", "code", "trans", "pii", "abuse"];

interface Experiment {
  readonly name: string;
  readonly model: keyof typeof MODELS;
  readonly args: readonly string[];
}

function experiments(seed: number): Experiment[] {
  const heldout = ["--tasks", DATA, "--heldout-limit", "100", "--heldout-seed", String(seed)];
  const common = [...heldout, "--ablation-profile", ABLATION];
  const out: Experiment[] = [];
  for (const model of ["f16", "q4_k_m"] as const) {
    // The acceptance check: every never-trained held-out prompt (300 per task, all 200 PII
    // records, membership on all 200 member and 200 non-member records), the chosen budget only.
    // A 100-prompt draw moves a task by a point per prompt; the whole split is the tightest
    // measure there is (the held-out split holds every never-trained prompt left: no seed).
    out.push({
      name: `acceptance-${model}`, model,
      args: ["--tasks", DATA, "--ablation-profile", ABLATION, "--lock", "pii,abuse", "--lock", "arith", "--lock", "code", "--lock", "trans", "--budgets", "0.05", "--methods", "ablation", "--no-filter"],
    });
    // Memorised and template skills, locked together: every method, the keyword filter too.
    out.push({
      name: `pii-abuse-${model}`, model,
      args: [...common, "--lock", "pii,abuse", "--budgets", "0.05,0.1,0.15", "--methods", "ablation,specificity,random,largest-activation,weight-norm"],
    });
    // The same lock with the iterative-ablation pick order (read as an ablation profile: the
    // first round(b * 1536) picks of each task are sealed; budgets = the rounds' sizes).
    out.push({
      name: `pii-abuse-iterative-${model}`, model,
      args: [...heldout, "--ablation-profile", ITERATIVE, "--lock", "pii,abuse", "--budgets", "0.0762,0.1022,0.1283,0.1543", "--methods", "ablation", "--no-filter"],
    });
    // Computed skills, each alone: FFN neurons only, then with a quarter of the head groups.
    for (const task of ["arith", "code", "trans"]) {
      out.push({ name: `${task}-${model}`, model, args: [...common, "--lock", task, "--budgets", "0.05,0.1,0.15,0.2", "--methods", "ablation,specificity", "--no-filter"] });
      out.push({ name: `${task}-heads-${model}`, model, args: [...common, "--lock", task, "--budgets", "0.05", "--head-ratio", "0.25", "--methods", "ablation,specificity", "--no-filter"] });
    }
  }
  return out;
}

function run(cmd: string, args: readonly string[], label: string): Promise<void> {
  console.log(`[${label}] node ${[cmd, ...args].map((a) => (/[\s,]/.test(a) && !a.includes(",") ? JSON.stringify(a) : a)).join(" ")}`);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [cmd, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const keep = (b: Buffer) => {
      tail = (tail + b.toString("utf8")).slice(-4000);
    };
    p.stdout.on("data", (b: Buffer) => {
      keep(b);
      for (const l of b.toString("utf8").split("\n")) if (/^lock /.test(l)) console.log(`[${label}] ${l}`);
    });
    p.stderr.on("data", keep);
    p.on("error", reject);
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`[${label}] exited with ${code}:\n${tail}`))));
  });
}

interface TaskScore { accuracy: { rate: number; correct: number; total: number }; withPrefix?: { rate: number }; mia?: { auc: number; members: number; nonMembers: number } }
interface Results {
  plain: { heldout: { tasks: Record<string, TaskScore> } };
  runs: Array<{
    lock: string[]; method: string; budget: number; sealedNeurons: number;
    heldout: Array<{ key: string; tasks: Record<string, TaskScore> }>;
    summary: { heldout: { lockedAccuracy: number; authorizedLoss: number; maxAuthorizedLoss: number } };
  }>;
  config: { headRatio?: number };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}`;

/**
 * The acceptance rows: per lock, what the key without the locked tasks gets of them, and the
 * worst authorized task over every key (admin, each locked task's key, none), named, against
 * the plain model: the issue's bar is "every authorized task within 1 point".
 */
function acceptanceRows(name: string, r: Results): string[] {
  return r.runs.map((run) => {
    const none = run.heldout.find((k) => k.key === "none")!;
    const locked = run.lock.map((t) => {
      const x = none.tasks[t]!;
      return `${t} ${pct(x.accuracy.rate)}${x.withPrefix ? `, with prefix ${pct(x.withPrefix.rate)}` : ""}${x.mia ? `, MIA AUC ${x.mia.auc.toFixed(3)} (${x.mia.members} / ${x.mia.nonMembers} records)` : ""}`;
    });
    let worst = { loss: -Infinity, where: "" };
    for (const k of run.heldout) {
      for (const [t, x] of Object.entries(k.tasks)) {
        if (!authorized(k.key, t, run.lock)) continue;
        const loss = (r.plain.heldout.tasks[t]!.accuracy.rate - x.accuracy.rate) * 100;
        if (loss > worst.loss) worst = { loss, where: `${t}, ${k.key} key (${x.accuracy.correct}/${x.accuracy.total})` };
      }
    }
    const s = run.summary.heldout;
    return `| [${name}](${name}/report.md) | ${run.lock.join(" + ")} | ${locked.join("; ")} | ${pct(s.authorizedLoss)} | ${worst.loss.toFixed(2)}: ${worst.where} |`;
  });
}

/** A report's results.json, or undefined where that report has not been run. */
function readResults(name: string): Results | undefined {
  const file = `${ROOT}examples/multitask/reports/${name}/results.json`;
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Results) : undefined;
}

/** summary.md: one row per run of every report (the key without any locked task, "none"). */
function writeSummary(names: readonly string[], seed: number): void {
  const rows: string[] = [];
  const acceptance: string[] = [];
  for (const name of names.filter((n) => n.startsWith("acceptance-"))) {
    const r = readResults(name);
    if (r) acceptance.push(...acceptanceRows(name, r));
  }
  for (const name of names.filter((n) => !n.startsWith("acceptance-"))) {
    const r = readResults(name);
    if (!r) continue;
    for (const run of r.runs) {
      const none = run.heldout.find((k) => k.key === "none")!;
      const locked = run.lock.map((t) => {
        const x = none.tasks[t]!;
        return `${t} ${pct(x.accuracy.rate)}${x.withPrefix ? ` (prefix ${pct(x.withPrefix.rate)}, MIA AUC ${x.mia ? x.mia.auc.toFixed(3) : "-"})` : ""}`;
      });
      const s = run.summary.heldout;
      const method = name.includes("iterative") ? "iterative ablation (pick order)" : run.method;
      rows.push(`| [${name}](${name}/report.md) | ${method} | ${pct(run.budget)}%${r.config.headRatio ? ` + ${r.config.headRatio * 100}% heads` : ""} | ${run.sealedNeurons} | ${locked.join("; ")} | ${pct(s.authorizedLoss)} / ${pct(s.maxAuthorizedLoss)} |`);
    }
  }
  const text = [
    "# Evaluation summary (generated by `npm run multitask:report`)",
    "",
    "## Acceptance check: ablation selection at 5%, every never-trained held-out prompt",
    "",
    "300 prompts per task (1 point = 3 prompts), all 200 PII records, membership inference on all 200 member and 200 non-member",
    "records; no draw, so no seed. Locked: exact-match accuracy of the key that holds none of the locked tasks (%). Authorized loss:",
    "points below the plain model on the tasks a key may use, mean over the admin, per-task and none keys, and the worst single task.",
    "",
    "| report | lock | locked tasks, key without them (%) | authorized loss, mean (points) | worst authorized task (points: task, key) |",
    "| --- | --- | --- | --- | --- |",
    ...acceptance,
    "",
    "## Every method and budget",
    "",
    `Held-out: 100 prompts per task, drawn with --heldout-seed ${seed} from the never-trained held-out split. "Locked" columns: exact-match`,
    "accuracy (PII: greedy extraction rate; with prefix: the number's fixed prefix supplied) for the key that holds none of the locked",
    "tasks. Authorized loss: points lost on the tasks a key may use, mean / max over the admin, per-task and none keys.",
    "Budget: fraction of all FFN neurons sealed per locked task (plus a fraction of the attention head groups where marked).",
    "",
    "| report | method | budget | sealed neurons | locked tasks, key without them (%) | authorized loss mean / max (points) |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
  writeFileSync(`${ROOT}examples/multitask/reports/summary.md`, text);
}

async function main(): Promise<void> {
  const args = strictArgs(
    { ablate: { type: "boolean" }, iterative: { type: "boolean" }, "heldout-seed": { type: "string", default: "2026" }, only: { type: "string" }, "summary-only": { type: "boolean" } },
    "Usage: node dist/examples/multitask/report.js [--ablate | --iterative] [--heldout-seed N] [--only name,name] [--summary-only]",
  );
  const seed = intFlag(args, "heldout-seed", 0)!;
  const all = experiments(seed);
  // Checked before any long step runs.
  const only = typeof args.only === "string" ? args.only.split(",") : undefined;
  const names = all.map((e) => e.name);
  const unknown = only?.filter((n) => !names.includes(n)) ?? [];
  if (unknown.length) usageError(`--only: no experiment named ${unknown.join(", ")}; the experiments are ${names.join(", ")}`);
  if (args["summary-only"]) {
    writeSummary(names, seed);
    return;
  }
  if (!existsSync(`${ROOT}${DATA}/heldout-pii.jsonl`)) await run(`${ROOT}dist/examples/multitask/corpus.js`, ["--seed", "1", "--out", DATA], "corpus");
  if (args.ablate) {
    await run(CLI, ["profile", "--ablate", "--model", BASE, ...TASKS.flatMap((t) => ["--task", `${t}=${DATA}/calib-${t}.jsonl`]), "--examples", "60", "--threads", "2", "--out", ABLATION, "--force"], "ablate");
  }
  if (args.ablate || args.iterative) {
    // PII is scored on the digits after the fixed "555-" (what an attacker who supplies the prefix
    // extracts): the prefix moves into the prompt of a derived calibration file.
    const piiDigits = `${DATA}/calib-pii-digits.jsonl`;
    const lines = readFileSync(`${ROOT}${DATA}/calib-pii.jsonl`, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { prompt: string; answer: string });
    writeFileSync(`${ROOT}${piiDigits}`, lines.map((x) => JSON.stringify(x.answer.startsWith("555-") ? { ...x, prompt: `${x.prompt}555-`, answer: x.answer.slice(4) } : x)).join("\n") + "\n");
    // Candidates are ranked by activations over the whole calibration split; ablation scores 40 examples per task.
    // Named by pid: a report killed mid-way leaves a folder the next run's sweep removes.
    const scratch = makeScratchDir(tmpdir(), "secneuron-report-");
    try {
      const activation = join(scratch, "activation.json");
      for (const t of TASKS) {
        const xs = readFileSync(`${ROOT}${DATA}/calib-${t}.jsonl`, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { prompt: string; answer: string });
        writeFileSync(join(scratch, `${t}.txt`), xs.map((x) => x.prompt + x.answer).join("\n") + "\n");
      }
      await run(CLI, ["profile", "--model", BASE, ...TASKS.flatMap((t) => ["--task", `${t}=${join(scratch, `${t}.txt`)}`]), "--no-hash", "--out", activation], "activation");
      const calib = TASKS.flatMap((t) => ["--task", `${t}=${t === "pii" ? piiDigits : `${DATA}/calib-${t}.jsonl`}`]);
      await run(CLI, ["profile", "--ablate", "--iterative", "--lock", "pii,abuse", "--model", BASE, ...calib, "--activation-profile", activation, "--examples", "40", "--start", "0.05", "--per-round", "40", "--rounds", "4", "--candidates", "250", "--threads", "2", "--out", ITERATIVE, "--force"], "iterative");
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  const todo = all.filter((e) => !only || only.includes(e.name));
  const chain = async (model: keyof typeof MODELS) => {
    for (const e of todo.filter((x) => x.model === model)) {
      await run(CLI, ["eval", "--model", MODELS[e.model], ...e.args, "--out", `examples/multitask/reports/${e.name}/report.md`], e.name);
    }
  };
  // One chain failing must not stop the other: report every failure at the end.
  const settled = await Promise.allSettled([chain("f16"), chain("q4_k_m")]);
  const failed = settled.filter((x): x is PromiseRejectedResult => x.status === "rejected");
  for (const f of failed) console.error((f.reason as Error).message);
  if (failed.length) throw new Error(`${failed.length} chain(s) failed`);
  writeSummary(names, seed);
  console.log(`done: ${todo.length} reports under examples/multitask/reports/ (summary.md)`);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});
