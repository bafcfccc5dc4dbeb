/**
 * Ablation profiling in llama.cpp: zeroing each unit's sealable rows in the memory-mapped scratch
 * copy and re-scoring calibration answers finds the oracle's skill neurons exactly, leaves the
 * user's file untouched, and rejects bad input before llama.cpp sees it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ORACLE_SKILLS } from "../../examples/fixtures/build-fixtures.js";
import { digits, letters } from "./oracle-calibration.js";
import { selectNeurons } from "../../plugin/core/profile/select.js";
import { parseProfile, parseProfileText } from "../../plugin/core/profile/profile.js";
import { profileCommand } from "../../plugin/cli/profile.js";
import { ablateModel } from "../../plugin/edges/profile/index.js";
import { oracleFixtures, scratchDir } from "../engine/helpers.js";

const scratch = scratchDir("ablate");
let files: Awaited<ReturnType<typeof oracleFixtures>>;
beforeAll(async () => {
  files = await oracleFixtures();
});
afterAll(() => scratch.cleanup());

const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

describe("ablateModel", () => {
  it("finds the oracle's skill neurons by zeroing rows in llama.cpp (F16)", async () => {
    const model = files.f16;
    const before = sha(model);
    const progress: number[] = [];
    const { profile, stats } = await ablateModel({
      modelPath: model, tasks: { letters, digits }, units: "ffn", layers: [0], scoreEos: false, scratchDir: scratch.dir,
      onProgress: (p) => progress.push(p.done),
    });
    expect(parseProfile(JSON.parse(JSON.stringify(profile)))).toEqual(profile);
    expect(profile.source?.statistic).toMatch(/^ablation/);
    expect(stats.units).toBe(512);
    expect(progress.at(-1)).toBe(512);
    expect(stats.examples).toEqual({ letters: 26, digits: 10 });
    expect(stats.scoredTokens).toEqual({ letters: 78, digits: 30 });
    const sel = selectNeurons(profile, { tasks: ["letters", "digits"], count: { letters: 26, digits: 10 } });
    expect(sel.perTask.get("letters")).toEqual(ORACLE_SKILLS.letters.neurons.map((index) => ({ layer: 0, index })));
    expect(sel.perTask.get("digits")).toEqual(ORACLE_SKILLS.digits.neurons.map((index) => ({ layer: 0, index })));
    // A skill neuron matters to its task only; filler neurons matter to neither.
    const imp = (t: string, i: number) => profile.tasks[t]!.layers[0]!.importance[i]!;
    for (const i of ORACLE_SKILLS.letters.neurons) expect(imp("letters", i)).toBeGreaterThan(0.01);
    for (const i of ORACLE_SKILLS.letters.neurons) expect(imp("digits", i)).toBeLessThan(1e-3);
    // The user's file is never written; the scratch copy is gone.
    expect(sha(model)).toBe(before);
    expect(readdirSync(scratch.dir).filter((f) => f.startsWith("secneuron-ablate-"))).toEqual([]);
  }, 180_000);

  it("ablates only the candidates, conditional on a zeroed selection", async () => {
    const letterNeurons = ORACLE_SKILLS.letters.neurons;
    const filler = [...Array(512).keys()].filter((i) => !letterNeurons.includes(i) && !ORACLE_SKILLS.digits.neurons.includes(i)).slice(0, 3);
    const candidates = [...letterNeurons.slice(0, 3), ...filler].map((index) => ({ kind: "ffn" as const, layer: 0, index }));
    const zeroed = letterNeurons.slice(3, 6).map((index) => ({ kind: "ffn" as const, layer: 0, index }));
    const { profile, stats } = await ablateModel({ modelPath: files.f32, tasks: { letters, digits }, units: "ffn", layers: [0], candidates, zeroed, scoreEos: false, scratchDir: scratch.dir });
    expect(stats.units).toBe(6);
    const imp = profile.tasks.letters!.layers[0]!.importance;
    for (const i of letterNeurons.slice(0, 3)) expect(imp[i]).toBeGreaterThan(0.01);
    for (const i of [...filler, ...letterNeurons.slice(3)]) expect(imp[i]).toBe(0); // filler, zeroed, not a candidate
    // The plain losses are taken with the selection zeroed: letters already lose.
    expect(stats.baseLoss.letters).toBeGreaterThan(0.1);
    await expect(ablateModel({ modelPath: files.f32, tasks: { letters }, units: "ffn", candidates: [{ kind: "head", layer: 0, index: 0 }], scratchDir: scratch.dir })).rejects.toMatchObject({ code: "PROFILE_BAD_UNIT" });
  }, 60_000);

  it("stops between units on abort and leaves no scratch copy", async () => {
    const ac = new AbortController();
    const seen: number[] = [];
    await expect(
      ablateModel({ modelPath: files.f32, tasks: { letters: letters.slice(0, 3) }, units: "ffn", layers: [0], scoreEos: false, scratchDir: scratch.dir, signal: ac.signal,
        onProgress: (p) => { seen.push(p.done); if (p.done === 3) ac.abort(); } }),
    ).rejects.toMatchObject({ code: "ABLATE_ABORTED" });
    expect(seen).toEqual([1, 2, 3]);
    expect(readdirSync(scratch.dir).filter((f) => f.startsWith("secneuron-ablate-"))).toEqual([]);
  }, 60_000);

  it("ablates head groups, and rejects bad input before llama.cpp", async () => {
    const { profile, stats } = await ablateModel({ modelPath: files.f32, tasks: { letters: letters.slice(0, 4) }, units: "heads", scoreEos: false, scratchDir: scratch.dir });
    expect(stats.units).toBe(8);
    expect(profile.model.headGroups).toBe(4);
    expect(profile.tasks.letters!.layers.map((l) => l.heads!.length)).toEqual([4, 4]);
    await expect(ablateModel({ modelPath: files.f32, tasks: {}, scratchDir: scratch.dir })).rejects.toMatchObject({ code: "PROFILE_NO_TASKS" });
    await expect(ablateModel({ modelPath: files.f32, tasks: { Bad: letters }, scratchDir: scratch.dir })).rejects.toMatchObject({ code: "PROFILE_BAD_TASK" });
    await expect(ablateModel({ modelPath: files.f32, tasks: { letters }, layers: [7], scratchDir: scratch.dir })).rejects.toMatchObject({ code: "PROFILE_BAD_LAYER" });
    const junk = join(scratch.dir, "junk.gguf");
    writeFileSync(junk, Buffer.from("GGUF\x03\x00\x00\x00garbage"));
    await expect(ablateModel({ modelPath: junk, tasks: { letters }, scratchDir: scratch.dir })).rejects.toMatchObject({ name: "GgufFormatError" });
  }, 120_000);
});

describe("secneuron profile --ablate", () => {
  it("writes an ablation profile from .jsonl calibration files (Q8_0 rows), with precise usage errors", async () => {
    const outs: string[] = [];
    const io = { out: (s: string) => outs.push(s), err: () => {}, isTTY: false };
    const lf = join(scratch.dir, "letters.jsonl");
    const df = join(scratch.dir, "digits.jsonl");
    writeFileSync(lf, letters.map((x) => JSON.stringify(x)).join("\n"));
    writeFileSync(df, digits.map((x) => JSON.stringify(x)).join("\n"));
    const out = join(scratch.dir, "ablation.json");
    const code = await profileCommand.run({ model: files.q8_0, task: [`letters=${lf}`, `digits=${df}`], out, ablate: true, units: "ffn", threads: "1", json: true }, [], io);
    expect(code).toBe(0);
    const p = parseProfileText(readFileSync(out, "utf8"));
    const sel = selectNeurons(p, { tasks: ["letters", "digits"], count: { letters: 26, digits: 10 }, layers: [0] });
    expect(sel.perTask.get("letters")).toEqual(ORACLE_SKILLS.letters.neurons.map((index) => ({ layer: 0, index })));
    expect(sel.perTask.get("digits")).toEqual(ORACLE_SKILLS.digits.neurons.map((index) => ({ layer: 0, index })));
    const summary = JSON.parse(outs[0]!) as { units: number; examples: Record<string, number> };
    expect(summary).toMatchObject({ units: 1024, examples: { letters: 26, digits: 10 } });
    expect(p.source).toMatchObject({ "calibration.letters": "letters.jsonl", units: "ffn" });

    const bad = join(scratch.dir, "bad.jsonl");
    writeFileSync(bad, '{"prompt": "ab"}\n');
    const out2 = join(scratch.dir, "ablation2.json");
    await expect(profileCommand.run({ model: files.q8_0, task: [`letters=${bad}`], out: out2, ablate: true }, [], io)).rejects.toThrow(/bad\.jsonl:1: need string "prompt" and non-empty string "answer"/);
    await expect(profileCommand.run({ model: files.q8_0, task: [`letters=${lf}`], out: out2, ablate: true, units: "neurons" }, [], io)).rejects.toThrow(/--units must be ffn, heads or all/);
    await expect(profileCommand.run({ model: files.q8_0, task: [`letters=${lf}`], out: out2, units: "ffn" }, [], io)).rejects.toThrow(/--units goes with --ablate/);
    await expect(profileCommand.run({ model: files.q8_0, task: [`letters=${lf}`], out: out2, ablate: true, "max-tokens": "5" }, [], io)).rejects.toThrow(/does not apply to --ablate/);
    expect(existsSync(out2)).toBe(false);
  }, 180_000);
});
