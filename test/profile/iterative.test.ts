/**
 * Iterative (conditional) ablation selection: the pure ranking and pick-order profile, then the
 * rounds in llama.cpp on the oracle model (whose letter skill sits on 26 known neurons) and the
 * `profile --ablate --iterative` command with its usage errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ORACLE_SKILLS } from "../../examples/fixtures/build-fixtures.js";
import { digits, letters } from "./oracle-calibration.js";
import { parseProfile, parseProfileText, type Profile } from "../../plugin/core/profile/profile.js";
import { PICK_ORDER_STATISTIC, PICK_ORDER_TOP, pickOrderProfile, rankBySpecificity, readPickOrder } from "../../plugin/core/profile/pick-order.js";
import { selectNeurons } from "../../plugin/core/profile/select.js";
import { profileCommand } from "../../plugin/cli/profile.js";
import { iterativeSelection } from "../../plugin/edges/profile/index.js";
import { oracleFixtures, scratchDir } from "../engine/helpers.js";

function profileOf(tasks: Record<string, number[][]>, nFf: number): Profile {
  return parseProfile({
    format: "secneuron-profile", version: 1,
    model: { architecture: "llama", blockCount: Object.values(tasks)[0]!.length, feedForwardLength: nFf },
    tasks: Object.fromEntries(Object.entries(tasks).map(([k, ls]) => [k, { tokens: 10, layers: ls.map((importance, layer) => ({ layer, importance })) }])),
  });
}

describe("rankBySpecificity", () => {
  // a's mean is 1, b's is 0.125: b's 1.0 at neuron 1 counts as 8 of a's units.
  const p = profileOf({ a: [[2, 2, 3, 1], [0, 0, 0, 0]], b: [[0, 1, 0, 0], [0, 0, 0, 0]] }, 4);
  it("ranks by the task-mean-normalised ratio, drops silent neurons, breaks ties by position", () => {
    // a: n0 = 2/(0+.01), n2 = 3/(0+.01), n3 = 1/.01, n1 = 2/(8+.01); layer 1 is silent for a.
    expect(rankBySpecificity(p, "a")).toEqual([{ layer: 0, index: 2 }, { layer: 0, index: 0 }, { layer: 0, index: 3 }, { layer: 0, index: 1 }]);
    expect(rankBySpecificity(p, "b")).toEqual([{ layer: 0, index: 1 }]);
    const tie = profileOf({ a: [[1, 1], [1, 0]], b: [[0, 0], [0, 0]] }, 2);
    expect(rankBySpecificity(tie, "a")).toEqual([{ layer: 0, index: 0 }, { layer: 0, index: 1 }, { layer: 1, index: 0 }]);
  });
  it("honours exclude, pool (deduplicated) and a chosen set of other tasks", () => {
    expect(rankBySpecificity(p, "a", { exclude: [{ layer: 0, index: 2 }] }).map((r) => r.index)).toEqual([0, 3, 1]);
    expect(rankBySpecificity(p, "a", { pool: [{ layer: 0, index: 1 }, { layer: 0, index: 3 }, { layer: 0, index: 1 }] }).map((r) => r.index)).toEqual([3, 1]);
    // Without b counted against it, neuron 1 ties neuron 0 and wins nothing over it.
    expect(rankBySpecificity(p, "a", { others: [] }).map((r) => r.index)).toEqual([2, 0, 1, 3]);
    expect(() => rankBySpecificity(p, "c")).toThrow(/task 'c' is not in the profile/);
    expect(() => rankBySpecificity(p, "a", { others: ["z"] })).toThrow(/task 'z'/);
  });
});

describe("pick-order profile", () => {
  const model = { architecture: "llama", blockCount: 2, feedForwardLength: 4 };
  const picks = { a: [{ layer: 1, index: 3 }, { layer: 0, index: 0 }, { layer: 0, index: 2 }], b: [{ layer: 0, index: 1 }] };
  it("makes every budget a prefix of the pick order, and reads back", () => {
    const p = parseProfile(JSON.parse(JSON.stringify(pickOrderProfile({ model, tasks: ["a", "b", "c"], picks, tokens: { a: 5, b: 6, c: 7 }, source: { rounds: "2" } }))));
    expect(p.source).toEqual({ rounds: "2", statistic: PICK_ORDER_STATISTIC });
    expect(p.tasks.a!.layers[1]!.importance[3]).toBe(PICK_ORDER_TOP);
    expect(p.tasks.c!.layers.every((l) => l.importance.every((v) => v === 0))).toBe(true);
    expect(p.tasks.c!.tokens).toBe(7);
    for (let n = 1; n <= 3; n++) {
      const sel = selectNeurons(p, { tasks: ["a"], count: n });
      const want = picks.a.slice(0, n).sort((x, y) => x.layer - y.layer || x.index - y.index);
      expect(sel.perTask.get("a")).toEqual(want);
    }
    expect(readPickOrder(p)).toEqual(picks);
  });
  it("rejects picks outside the model, picked twice, or of an unknown task; and non-pick-order profiles", () => {
    expect(() => pickOrderProfile({ model, tasks: ["a"], picks: { a: [{ layer: 2, index: 0 }] }, tokens: {} })).toThrow(/pick 2\.0 of 'a' is outside 2 layers x 4 neurons/);
    expect(() => pickOrderProfile({ model, tasks: ["a", "b"], picks: { a: [{ layer: 0, index: 1 }], b: [{ layer: 0, index: 1 }] }, tokens: {} })).toThrow(/neuron 0\.1 is picked twice/);
    expect(() => pickOrderProfile({ model, tasks: ["a"], picks: { x: [] }, tokens: {} })).toThrow(/picks for 'x'/);
    expect(() => readPickOrder(profileOf({ a: [[1]] }, 1))).toThrow(/not a pick-order profile/);
  });
});

const scratch = scratchDir("iterative");
let files: Awaited<ReturnType<typeof oracleFixtures>>;
beforeAll(async () => {
  files = await oracleFixtures();
});
afterAll(() => scratch.cleanup());

const sorted = (xs: ReadonlyArray<{ layer: number; index: number }>) => [...xs].sort((a, b) => a.layer - b.layer || a.index - b.index);

describe("iterativeSelection (llama.cpp)", () => {
  it("starts by activation, then picks the rest of the skill in rounds with the picks so far zeroed; resumes", async () => {
    const rounds: Array<{ round: number; selected: Record<string, number> }> = [];
    // 0.01 of 1024 neurons = 10 to start; 26 letter neurons in all, so two rounds of 8 finish the skill.
    const r = await iterativeSelection({
      modelPath: files.f32, tasks: { letters, digits }, lock: ["letters"], start: 0.01, rounds: 2, perRound: 8, candidates: 12, scratchDir: scratch.dir, hashModel: false,
      onRound: (x) => { rounds.push({ round: x.round, selected: x.selected }); },
    });
    expect(rounds).toEqual([{ round: 1, selected: { letters: 18 } }, { round: 2, selected: { letters: 26 } }]);
    const picks = readPickOrder(r.profile).letters!;
    expect(sorted(picks)).toEqual(ORACLE_SKILLS.letters.neurons.map((index) => ({ layer: 0, index })));
    expect(r.profile.source).toMatchObject({ lock: "letters", rounds: "2", perRound: "8", candidates: "12" });
    expect(readPickOrder(r.profile).digits).toBeUndefined();
    // Nothing the locked task uses is left: a resumed run stops at once and keeps the picks.
    const again = await iterativeSelection({ modelPath: files.f32, tasks: { letters, digits }, lock: ["letters"], rounds: 3, perRound: 8, candidates: 12, scratchDir: scratch.dir, hashModel: false, resume: { picks: { letters: picks }, rounds: 2 } });
    expect(readPickOrder(again.profile).letters).toEqual(picks);
    expect(again.profile.source?.rounds).toBe("2");
  }, 180_000);

  it("rejects bad options before llama.cpp", async () => {
    const base = { modelPath: files.f32, tasks: { letters, digits }, scratchDir: scratch.dir };
    await expect(iterativeSelection({ ...base, lock: [] })).rejects.toMatchObject({ code: "PROFILE_NO_TASKS" });
    await expect(iterativeSelection({ ...base, lock: ["code"] })).rejects.toThrow(/locked task 'code' has no calibration examples/);
    await expect(iterativeSelection({ ...base, lock: ["letters", "digits"] })).rejects.toThrow(/every task is locked/);
    await expect(iterativeSelection({ ...base, lock: ["letters"], start: 1 })).rejects.toThrow(/start fraction must be in \[0, 1\)/);
    await expect(iterativeSelection({ ...base, lock: ["letters"], perRound: 10, candidates: 5 })).rejects.toThrow(/candidates per round \(5\) must be at least the picks per round \(10\)/);
    await expect(iterativeSelection({ ...base, lock: ["letters"], resume: { picks: { digits: [] }, rounds: 1 } })).rejects.toThrow(/picks for 'digits', which is not locked/);
  });
});

describe("secneuron profile --ablate --iterative", () => {
  it("writes a pick-order profile that eval and seal read, with precise usage errors", async () => {
    const outs: string[] = [];
    const errs: string[] = [];
    const io = { out: (s: string) => outs.push(s), err: (s: string) => errs.push(s), isTTY: false };
    const lf = join(scratch.dir, "letters.jsonl");
    const df = join(scratch.dir, "digits.jsonl");
    writeFileSync(lf, letters.map((x) => JSON.stringify(x)).join("\n"));
    writeFileSync(df, digits.map((x) => JSON.stringify(x)).join("\n"));
    const out = join(scratch.dir, "picks.json");
    const args = { model: files.q8_0, task: [`letters=${lf}`, `digits=${df}`], out, ablate: true, iterative: true, lock: "digits", start: "0", rounds: "2", "per-round": "5", candidates: "10", "no-hash": true };
    expect(await profileCommand.run(args, [], io)).toBe(0);
    expect(errs).toEqual([expect.stringMatching(/^round 1\/2: digits 5 neurons picked/), expect.stringMatching(/^round 2\/2: digits 10 neurons picked/)]);
    const p = parseProfileText(readFileSync(out, "utf8"));
    expect(sorted(readPickOrder(p).digits!)).toEqual(ORACLE_SKILLS.digits.neurons.map((index) => ({ layer: 0, index })));
    // seal's and eval's selection takes the picks: the first 10 are the digit skill.
    expect(selectNeurons(p, { tasks: ["digits"], count: 10 }).perTask.get("digits")).toEqual(ORACLE_SKILLS.digits.neurons.map((index) => ({ layer: 0, index })));
    expect(p.source).toMatchObject({ "calibration.digits": "digits.jsonl", lock: "digits", rounds: "2" });
    expect(outs.at(-1)).toMatch(/pick order of 10 digits neurons after 2 round\(s\)/);

    // Candidates ranked by an activation profile taken elsewhere (here: on the same texts).
    const lt = join(scratch.dir, "letters.txt");
    const dt = join(scratch.dir, "digits.txt");
    writeFileSync(lt, letters.map((x) => x.prompt + x.answer).join("\n"));
    writeFileSync(dt, digits.map((x) => x.prompt + x.answer).join("\n"));
    const act = join(scratch.dir, "activation.json");
    expect(await profileCommand.run({ model: files.q8_0, task: [`letters=${lt}`, `digits=${dt}`], out: act, "no-hash": true, json: true }, [], io)).toBe(0);
    const out3 = join(scratch.dir, "picks3.json");
    expect(await profileCommand.run({ ...args, out: out3, "activation-profile": act }, [], io)).toBe(0);
    const p3 = parseProfileText(readFileSync(out3, "utf8"));
    expect(sorted(readPickOrder(p3).digits!)).toEqual(ORACLE_SKILLS.digits.neurons.map((index) => ({ layer: 0, index })));
    expect(p3.source).toMatchObject({ activation: "activation.json" });

    const out2 = join(scratch.dir, "picks2.json");
    const run = (extra: Record<string, unknown>) => profileCommand.run({ ...args, out: out2, ...extra }, [], io);
    await expect(run({ lock: undefined })).rejects.toThrow(/--iterative needs --lock/);
    await expect(run({ lock: "code" })).rejects.toThrow(/--lock code: no --task code=<calib> was given/);
    await expect(run({ lock: "letters,digits" })).rejects.toThrow(/at least one --task that is not locked/);
    await expect(run({ units: "heads" })).rejects.toThrow(/--iterative selects FFN neurons only/);
    await expect(run({ start: "1.5" })).rejects.toThrow(/--start must be a fraction in \[0, 1\)/);
    await expect(run({ rounds: "-1" })).rejects.toThrow(/--rounds must be an integer >= 0/);
    await expect(run({ resume: out, start: "0.1" })).rejects.toThrow(/--start does not apply to --resume/);
    await expect(run({ resume: out, lock: "letters", start: undefined })).rejects.toThrow(/has picks for 'digits', which --lock does not name/);
    await expect(run({ "activation-profile": out })).rejects.toMatchObject({ code: "PROFILE_NOT_ACTIVATION", message: expect.stringMatching(/not an activation profile \(source\.statistic: pick order/) });
    await expect(run({ "activation-profile": join(scratch.dir, "none.json") })).rejects.toThrow(/--activation-profile .*none\.json does not exist/);
    await expect(run({ iterative: undefined })).rejects.toThrow(/--lock goes with --iterative/);
    await expect(profileCommand.run({ model: files.q8_0, task: [`letters=${lf}`], out: out2, iterative: true }, [], io)).rejects.toThrow(/--iterative goes with --ablate/);
    expect(existsSync(out2)).toBe(false);
  }, 180_000);
});
