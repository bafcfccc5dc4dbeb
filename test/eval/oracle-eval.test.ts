/**
 * End-to-end evaluation on the oracle in real llama.cpp: profile on calibration runs, seal
 * "letters" at 1% and 3% of the FFN neurons with the specificity and random methods, evaluate the
 * admin, task:letters and no-key variants. Workers run from dist/: build first (npx tsc -p tsconfig.json).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ORACLE_SKILLS } from "../../examples/fixtures/build-fixtures.js";
import { evalCommand } from "../../plugin/cli/eval.js";
import { parseCommandArgs, type CliIo } from "../../plugin/cli/args.js";
import type { EvalResults, KeyScores } from "../../plugin/core/eval/results.js";
import { evaluate, ffnWeightNorms, loadTaskDir, resolveLossWorkerPath, type EvaluateOutput } from "../../plugin/edges/eval/index.js";
import { oracleFixtures, scratchDir } from "../engine/helpers.js";
import { oracleTasks } from "./oracle-tasks.js";
import { pickOrderProfile } from "../../plugin/core/profile/pick-order.js";

const scratch = scratchDir("eval");
let files: Awaited<ReturnType<typeof oracleFixtures>>;
let run: EvaluateOutput;

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

beforeAll(async () => {
  files = await oracleFixtures();
  if (!existsSync(resolveLossWorkerPath())) throw new Error(`${resolveLossWorkerPath()} missing: run npx tsc -p tsconfig.json first`);
  const tasks = oracleTasks();
  run = await evaluate({
    model: files.f32,
    // Digits carry a (meaningless on the oracle) membership split to exercise per-example losses.
    tasks: { letters: tasks.letters, digits: { ...tasks.digits, members: tasks.digits.calib.slice(0, 10), nonMembers: tasks.digits.heldout.slice(0, 10) } },
    locks: [["letters"]],
    budgets: [0.03, 0.01],
    methods: ["specificity", "random"],
    seed: 7,
    out: join(scratch.dir, "out"),
    tmpRoot: scratch.dir,
  });
}, 120_000);
afterAll(() => scratch.cleanup());

const find = (r: EvalResults, method: string, budget: number) => r.runs.find((x) => x.method === method && x.budget === budget)!;
const rate = (keys: readonly KeyScores[], key: string, task: string): number => keys.find((k) => k.key === key)!.tasks[task]!.accuracy.rate;

describe("evaluate() on the oracle", () => {
  it("the plain model answers every held-out prompt", () => {
    expect(run.results.plain.heldout.tasks.letters!.accuracy).toMatchObject({ correct: 52, total: 52 });
    expect(run.results.plain.heldout.tasks.digits!.accuracy).toMatchObject({ correct: 30, total: 30 });
  });

  it("specificity at 3% removes letters for the no-key variant only; digits intact", () => {
    const r = find(run.results, "specificity", 0.03);
    expect(r.sealedNeurons).toBe(ORACLE_SKILLS.letters.neurons.length); // only the 26 letter neurons are active on letters
    expect(rate(r.heldout, "none", "letters")).toBe(0);
    expect(rate(r.heldout, "admin", "letters")).toBe(1);
    expect(rate(r.heldout, "task:letters", "letters")).toBe(1);
    for (const k of ["admin", "task:letters", "none"]) expect(rate(r.heldout, k, "digits")).toBe(1);
    expect(r.summary.heldout).toEqual({ lockedAccuracy: 0, authorizedLoss: 0, maxAuthorizedLoss: 0 });
  });

  it("the ablation method measures its profile in llama.cpp and seals exactly the letter neurons", async () => {
    const tasks = oracleTasks();
    const logs: string[] = [];
    const r = await evaluate({
      model: files.f32, tasks: { letters: tasks.letters, digits: tasks.digits }, locks: [["letters"]], budgets: [0.03], methods: ["ablation"],
      ablationExamples: 26, filter: false, calibEvalLimit: 5, tmpRoot: scratch.dir, onProgress: (m) => logs.push(m),
    });
    expect(logs.some((l) => /^ablation profile: zeroing each unit in llama\.cpp, 26 calibration examples per task/.test(l))).toBe(true);
    const x = find(r.results, "ablation", 0.03);
    expect(x.sealedNeurons).toBe(ORACLE_SKILLS.letters.neurons.length); // only the letter neurons matter to letters
    expect(rate(x.heldout, "none", "letters")).toBe(0);
    expect(rate(x.heldout, "task:letters", "letters")).toBe(1);
    for (const k of ["admin", "task:letters", "none"]) expect(rate(x.heldout, k, "digits")).toBe(1);
  }, 120_000);

  it("a pick-order profile (profile --iterative) seals its first picks, and a budget beyond them is refused", async () => {
    const tasks = oracleTasks();
    const picks = pickOrderProfile({
      model: { architecture: "llama", blockCount: 2, feedForwardLength: 512 }, tasks: ["letters", "digits"],
      picks: { letters: ORACLE_SKILLS.letters.neurons.map((index) => ({ layer: 0, index })) }, tokens: { letters: 1, digits: 1 },
    });
    const base = { model: files.f32, tasks: { letters: tasks.letters, digits: tasks.digits }, methods: ["ablation" as const], ablationProfile: picks, filter: false, calibEvalLimit: 5, tmpRoot: scratch.dir };
    // 0.03 x 1024 = 31 neurons, but only 26 letter picks; digits have none.
    await expect(evaluate({ ...base, locks: [["letters"]], budgets: [0.03] })).rejects.toMatchObject({ code: "EVAL_BUDGET_BEYOND_PICKS", message: expect.stringMatching(/holds 26 picks for 'letters', but the largest budget seals 31/) });
    await expect(evaluate({ ...base, locks: [["digits"]], budgets: [0.01] })).rejects.toThrow(/holds 0 picks for 'digits'/);
    const r = await evaluate({ ...base, locks: [["letters"]], budgets: [26 / 1024] });
    const x = r.results.runs[0]!;
    expect(x.sealedNeurons).toBe(26);
    expect(rate(x.heldout, "none", "letters")).toBe(0);
    for (const k of ["admin", "task:letters", "none"]) expect(rate(x.heldout, k, "digits")).toBe(1);
  }, 120_000);

  it("random selection at the same budget does much worse at removing letters", () => {
    const spec = find(run.results, "specificity", 0.03).summary.heldout.lockedAccuracy;
    const rnd = find(run.results, "random", 0.03).summary.heldout.lockedAccuracy;
    expect(rnd).toBeGreaterThan(0.5);
    expect(rnd - spec).toBeGreaterThan(0.5);
    // Partial budget: fewer letter neurons sealed, some letter prompts survive.
    const partial = find(run.results, "specificity", 0.01).summary.heldout.lockedAccuracy;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(0.6);
  });

  it("budgets are chosen on calibration runs", () => {
    expect(run.results.chosen).toContainEqual({ lock: ["letters"], method: "specificity", budget: 0.03, metTarget: true });
    const rnd = run.results.chosen.find((c) => c.method === "random")!;
    expect(rnd.metTarget).toBe(false);
    expect(find(run.results, "specificity", 0.03).calib.length).toBe(3);
  });

  it("membership AUC from per-example losses, the keyword filter and its bypass", () => {
    const mia = run.results.plain.heldout.tasks.digits!.mia!;
    expect(mia.members).toBe(10);
    expect(mia.auc).toBeGreaterThanOrEqual(0);
    expect(mia.auc).toBeLessThanOrEqual(1);
    const f = run.results.filter[0]!;
    expect(f.task).toBe("letters");
    expect(f.keywords.length).toBeGreaterThan(0);
    expect(f.blockedHeldout.blocked).toBeGreaterThan(f.blockedHeldout.total / 2);
    expect(f.blockedOther.blocked).toBe(0);
    expect(f.passAfterRewrite["zero-width"].passed).toBe(f.passAfterRewrite["zero-width"].total);
    expect(f.accuracyAfterRewrite["zero-width"]!.rate).toBe(1); // the model still answers the rewritten prompts
  });

  it("writes report.md, chart.png, chart.svg and results.json", () => {
    const out = join(scratch.dir, "out");
    const md = readFileSync(join(out, "report.md"), "utf8");
    expect(md).toContain("## Budgets chosen on calibration data");
    expect(md).toContain("| letters | specificity | 3.00% | 26 | 0.0% | 0.0% / 0.0% |");
    expect([...readFileSync(join(out, "chart.png")).subarray(0, 8)]).toEqual(PNG);
    expect(readFileSync(join(out, "chart.svg"), "utf8")).toContain("<svg");
    const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as EvalResults;
    expect(json.format).toBe("secneuron-eval");
    expect(json.runs).toHaveLength(4);
  });
});

describe("weight norms from the GGUF", () => {
  it("agree across F32 and Q8_0", () => {
    const a = ffnWeightNorms(files.f32, 2);
    const b = ffnWeightNorms(files.q8_0, 2);
    expect(a.get(0)).toHaveLength(512);
    for (const l of [0, 1]) for (let i = 0; i < 512; i += 37) expect(b.get(l)![i]!).toBeCloseTo(a.get(l)![i]!, 1);
  });
});

describe("secneuron eval (CLI)", () => {
  function io(): CliIo & { stdout: string[]; stderr: string[] } {
    const stdout: string[] = [];
    const stderr: string[] = [];
    return { stdout, stderr, isTTY: false, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
  }
  function writeTaskDir(dir: string): void {
    mkdirSync(dir, { recursive: true });
    for (const [t, s] of Object.entries(oracleTasks())) {
      writeFileSync(join(dir, `heldout-${t}.jsonl`), s.heldout.map((x) => JSON.stringify({ task: t, ...x })).join("\n") + "\n");
      writeFileSync(join(dir, `calib-${t}.jsonl`), s.calib.map((x) => JSON.stringify(x)).join("\n") + "\n");
    }
  }

  it("runs from a task directory and writes the report where --out says", async () => {
    const dir = join(scratch.dir, "tasks");
    writeTaskDir(dir);
    expect(Object.keys(loadTaskDir(dir))).toEqual(["digits", "letters"]);
    // A seeded draw of held-out prompts: same seed, same sample; another seed, another sample.
    const all = loadTaskDir(dir).letters!.heldout;
    const a = loadTaskDir(dir, { heldoutSeed: 5, heldoutLimit: 6 }).letters!.heldout;
    expect(loadTaskDir(dir, { heldoutSeed: 5, heldoutLimit: 6 }).letters!.heldout).toEqual(a);
    expect(loadTaskDir(dir, { heldoutSeed: 6, heldoutLimit: 6 }).letters!.heldout).not.toEqual(a);
    expect(a).not.toEqual(all.slice(0, 6));
    for (const x of a) expect(all).toContainEqual(x);
    const out = join(scratch.dir, "cli", "oracle.md");
    const argv = ["--model", files.f32, "--tasks", dir, "--lock", "letters", "--budgets", "0.03", "--methods", "specificity,weight-norm", "--seed", "3", "--out", out, "--no-filter", "--tmp", scratch.dir, "--calib-eval", "10"];
    const { values, positionals } = parseCommandArgs(evalCommand, argv);
    const o = io();
    expect(await evalCommand.run(values, positionals, o)).toBe(0);
    expect(o.stdout.join("\n")).toMatch(/lock letters +specificity +budget 3\.00% +locked-task accuracy 0\.0% +authorized loss 0\.0%/);
    expect(readFileSync(out, "utf8")).toContain("# secneuron evaluation");
    expect([...readFileSync(join(scratch.dir, "cli", "chart.png")).subarray(0, 8)]).toEqual(PNG);
    const json = JSON.parse(readFileSync(join(scratch.dir, "cli", "results.json"), "utf8")) as EvalResults;
    expect(json.config.methods).toEqual(["specificity", "weight-norm"]);
    expect(json.tasks.letters!.calibEvaluated).toBe(10);
  }, 60_000);

  it("rejects bad usage with clear errors", async () => {
    const dir = join(scratch.dir, "tasks");
    const go = (argv: string[]) => {
      const { values, positionals } = parseCommandArgs(evalCommand, argv);
      return evalCommand.run(values, positionals, io());
    };
    await expect(go(["--tasks", dir])).rejects.toThrow(/--model is required/);
    await expect(go(["--model", files.f32, "--tasks", dir])).rejects.toThrow(/--lock is required/);
    await expect(go(["--model", files.f32, "--tasks", dir, "--lock", "letters", "--methods", "magic"])).rejects.toThrow(/unknown method 'magic'/);
    await expect(go(["--model", files.f32, "--tasks", dir, "--lock", "code"])).rejects.toThrow(/locked task 'code'/);
    await expect(go(["--model", files.f32, "--tasks", dir, "--lock", "letters", "--budgets", "0"])).rejects.toThrow(/budget 0 must be in/);
    await expect(go(["--model", files.f32, "--tasks", join(scratch.dir, "nope"), "--lock", "letters"])).rejects.toThrow(/does not exist/);
  });
});
