/**
 * Activation profiling through llama.cpp (a child process binding libllama via koffi): the
 * oracle's skill neurons come out exactly, activations match an independent forward pass, a
 * llama.cpp abort is an EngineError, and imatrix files round-trip. The worker runs from dist/:
 * build first (npx tsc -p tsconfig.json).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DIGITS,
  LETTERS,
  LETTER_NEURON_BY_CHAR,
  ORACLE_DIMS,
  ORACLE_SKILLS,
  encodeOracle,
  oracleReferenceWeights,
} from "../../examples/fixtures/build-fixtures.js";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { kv } from "../../plugin/core/gguf/types.js";
import { BYTE_VOCAB, llamaMetadata, llamaTensorShapes, type LlamaDims } from "../../plugin/core/gguf/byte-vocab.js";
import { parseProfileText, type Profile } from "../../plugin/core/profile/profile.js";
import { selectNeurons } from "../../plugin/core/profile/select.js";
import { EngineError, GgufFormatError } from "../../plugin/errors.js";
import { readGgufHeader, writeGgufFile } from "../../plugin/edges/gguf-file.js";
import {
  ProfileProcess,
  importImatrix,
  imatrixFfnLayers,
  imatrixTaskProfile,
  profileModel,
  profileModelWithStats,
  profileTaskImatrixEntries,
  resolveProfileWorkerPath,
  writeImatrix,
} from "../../plugin/edges/profile/index.js";
import { profileCommand } from "../../plugin/cli/profile.js";
import { oracleFixtures, scratchDir } from "../engine/helpers.js";

const scratch = scratchDir("profile-llama");
let files: Awaited<ReturnType<typeof oracleFixtures>>;

/** Letter strings (every letter in every position) and digit strings. */
const rot = (s: string, i: number): string => s.slice(i) + s.slice(0, i);
const LETTER_LINES = Array.from({ length: 26 }, (_, i) => rot(LETTERS, i).slice(0, 12 + (i % 7)));
const DIGIT_LINES = Array.from({ length: 10 }, (_, i) => rot(DIGITS, i) + rot(DIGITS, (i * 3) % 10).slice(0, 4));

beforeAll(async () => {
  files = await oracleFixtures();
  if (!existsSync(resolveProfileWorkerPath())) throw new Error(`${resolveProfileWorkerPath()} missing: run npx tsc -p tsconfig.json first`);
});
afterAll(() => scratch.cleanup());

function expectOracleSelection(p: Profile): void {
  const sel = selectNeurons(p, { tasks: ["letters", "digits"], count: { letters: ORACLE_SKILLS.letters.neurons.length, digits: ORACLE_SKILLS.digits.neurons.length } });
  expect(sel.perTask.get("letters")).toEqual(ORACLE_SKILLS.letters.neurons.map((index) => ({ layer: 0, index })));
  expect(sel.perTask.get("digits")).toEqual(ORACLE_SKILLS.digits.neurons.map((index) => ({ layer: 0, index })));
}

/**
 * Mirror of the reference forward pass for a single token at position 0: per-layer FFN activations
 * (and, in `attention`, per layer the attention output: the input of attn_output).
 */
function ffnActivationsAtPos0(tensors: ReadonlyMap<string, Float32Array>, d: { nEmbd: number; nFf: number; nLayer: number; nHead: number; nHeadKv: number; rmsEpsilon: number }, token: number, attention: Float32Array[] = []): Float32Array[] {
  const t = (n: string): Float32Array => {
    const v = tensors.get(n);
    if (!v) throw new Error(`missing ${n}`);
    return v;
  };
  const rms = (x: Float32Array, w: Float32Array): Float32Array => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const s = 1 / Math.sqrt(ss / x.length + d.rmsEpsilon);
    return x.map((v, i) => v * s * w[i]!);
  };
  const mv = (w: Float32Array, x: Float32Array, nIn: number, nOut: number): Float32Array => {
    const y = new Float32Array(nOut);
    for (let o = 0; o < nOut; o++) {
      let s = 0;
      for (let i = 0; i < nIn; i++) s += w[o * nIn + i]! * x[i]!;
      y[o] = s;
    }
    return y;
  };
  const hd = d.nEmbd / d.nHead;
  const kvDim = d.nHeadKv * hd;
  const x = t("token_embd.weight").slice(token * d.nEmbd, (token + 1) * d.nEmbd);
  const out: Float32Array[] = [];
  for (let l = 0; l < d.nLayer; l++) {
    const b = `blk.${l}.`;
    const v = mv(t(`${b}attn_v.weight`), rms(x, t(`${b}attn_norm.weight`)), d.nEmbd, kvDim);
    // One position: softmax over a single score is 1, so each head's output is its value.
    const att = new Float32Array(d.nEmbd);
    const group = d.nHead / d.nHeadKv;
    for (let h = 0; h < d.nHead; h++) for (let i = 0; i < hd; i++) att[h * hd + i] = v[Math.floor(h / group) * hd + i]!;
    attention.push(att);
    const ao = mv(t(`${b}attn_output.weight`), att, d.nEmbd, d.nEmbd);
    for (let i = 0; i < d.nEmbd; i++) x[i]! += ao[i]!;
    const fn = rms(x, t(`${b}ffn_norm.weight`));
    const g = mv(t(`${b}ffn_gate.weight`), fn, d.nEmbd, d.nFf);
    const u = mv(t(`${b}ffn_up.weight`), fn, d.nEmbd, d.nFf);
    const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
    out.push(a);
    const dn = mv(t(`${b}ffn_down.weight`), a, d.nFf, d.nEmbd);
    for (let i = 0; i < d.nEmbd; i++) x[i]! += dn[i]!;
  }
  return out;
}

/** Reference head group importances for one token: mean |a| over each group's r*hd features. */
function groupMeans(att: Float32Array, groups: number): number[] {
  const per = att.length / groups;
  return Array.from({ length: groups }, (_, g) => {
    let s = 0;
    for (let i = g * per; i < (g + 1) * per; i++) s += Math.abs(att[i]!);
    return s / per;
  });
}

/** max_g |ref_g - imp_g| / max_g ref_g (both already >= 0). */
function headRelErr(ref: readonly number[], heads: readonly number[] | undefined): number {
  expect(heads).toHaveLength(ref.length);
  let worst = 0;
  for (let g = 0; g < ref.length; g++) worst = Math.max(worst, Math.abs(ref[g]! - heads![g]!));
  return worst / Math.max(...ref);
}

/** max_i | |ref_i| - imp_i | / max_i |ref_i| */
function relErr(ref: Float32Array, importance: readonly number[]): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    worst = Math.max(worst, Math.abs(Math.abs(ref[i]!) - importance[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return worst / scale;
}

describe("profileModel on the oracle", () => {
  let profile: Profile;
  beforeAll(async () => {
    const r = await profileModelWithStats({ modelPath: files.f32, tasks: { letters: LETTER_LINES, digits: DIGIT_LINES } });
    profile = r.profile;
    expect(r.stats.tokensPerSecond).toBeGreaterThan(0);
  });

  it("writes a valid v1 profile with token counts (BOS evaluated, not counted)", () => {
    expect(parseProfileText(JSON.stringify(profile))).toEqual(profile);
    expect(profile.model).toMatchObject({ architecture: "llama", blockCount: 2, feedForwardLength: 512 });
    expect(profile.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(profile.tasks.letters!.tokens).toBe(LETTER_LINES.join("").length);
    expect(profile.tasks.digits!.tokens).toBe(DIGIT_LINES.join("").length);
    // Layer 1 is inert filler: exactly zero activation everywhere.
    for (const t of Object.values(profile.tasks)) expect(t.layers[1]!.importance.every((v) => v === 0)).toBe(true);
  });

  it("records one finite head importance per attention head group and layer", () => {
    expect(profile.model.headGroups).toBe(ORACLE_DIMS.nHeadKv);
    for (const t of Object.values(profile.tasks)) {
      for (const l of t.layers) {
        expect(l.heads).toHaveLength(ORACLE_DIMS.nHeadKv);
        for (const v of l.heads!) expect(Number.isFinite(v) && v >= 0).toBe(true);
      }
    }
  });

  it("the most task-specific neurons are exactly the oracle's skill neurons", () => {
    expectOracleSelection(profile);
    // Only skill neurons fire at all, each on its own character.
    const fired = (task: string): number[] => profile.tasks[task]!.layers[0]!.importance.flatMap((v, i) => (v > 0 ? [i] : []));
    expect(fired("letters")).toEqual(ORACLE_SKILLS.letters.neurons);
    expect(fired("digits")).toEqual(ORACLE_SKILLS.digits.neurons);
  });

  it("quantized fixtures give the same selection (q4_0)", async () => {
    expectOracleSelection(await profileModel({ modelPath: files.q4_0, tasks: { letters: LETTER_LINES, digits: DIGIT_LINES }, hashModel: false }));
  });

  it("maxTokens caps each task", async () => {
    const p = await profileModel({ modelPath: files.f32, tasks: { letters: LETTER_LINES, digits: DIGIT_LINES }, maxTokens: 20, hashModel: false });
    expect(p.tasks.letters!.tokens).toBe(20);
    expect(p.tasks.digits!.tokens).toBe(20);
  });
});

describe("activations match an independent forward pass", () => {
  it("oracle: layer-0 ffn_down input of one token", async () => {
    const w = oracleReferenceWeights("f32");
    const p = await profileModel({ modelPath: files.f32, tasks: { one: ["q"] }, addSpecial: false, kvType: "f32", hashModel: false });
    const att: Float32Array[] = [];
    const ref = ffnActivationsAtPos0(w.tensors, ORACLE_DIMS, BYTE_VOCAB.byteBase + "q".charCodeAt(0), att);
    expect(relErr(ref[0]!, p.tasks.one!.layers[0]!.importance)).toBeLessThan(1e-4);
    // The oracle's attn_output weights are zero, but their input (the heads' output) is not.
    const heads0 = groupMeans(att[0]!, ORACLE_DIMS.nHeadKv);
    expect(Math.max(...heads0)).toBeGreaterThan(0);
    for (let l = 0; l < ORACLE_DIMS.nLayer; l++) {
      const r = groupMeans(att[l]!, ORACLE_DIMS.nHeadKv);
      if (Math.max(...r) > 0) expect(headRelErr(r, p.tasks.one!.layers[l]!.heads), `layer ${l}`).toBeLessThan(1e-4);
      else expect(p.tasks.one!.layers[l]!.heads!.every((v) => v === 0)).toBe(true);
    }
    const n = LETTER_NEURON_BY_CHAR[LETTERS.indexOf("q")]!;
    expect(p.tasks.one!.layers[0]!.importance[n]).toBeGreaterThan(100);
    expect(p.tasks.one!.layers[0]!.meanSquare![n]).toBeCloseTo(ref[0]![n]! ** 2, -1);
  });

  it("random F32 model with live attention: every layer, one token", async () => {
    const d: LlamaDims = { contextLength: 64, nEmbd: 64, nLayer: 3, nFf: 192, nHead: 4, nHeadKv: 2, rmsEpsilon: 1e-5 };
    let s = 12345;
    const rnd = (): number => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 2 ** 32 - 0.5;
    };
    const tensors = llamaTensorShapes(d, BYTE_VOCAB.size).map((t) => {
      const n = t.ne.reduce((a, b) => a * b, 1);
      const values = t.matrix ? Float32Array.from({ length: n }, () => rnd() * 0.5) : Float32Array.from({ length: n }, () => 1 + rnd() * 0.2);
      return { name: t.name, ne: t.ne, type: GgmlType.F32, values };
    });
    const path = join(scratch.dir, "random-f32.gguf");
    await writeGgufFile(path, llamaMetadata(d, "random-f32", 0), tensors.map((t) => ({ name: t.name, ne: t.ne, type: t.type, data: new Uint8Array(t.values.buffer) })));
    const p = await profileModel({ modelPath: path, tasks: { one: ["k"] }, addSpecial: false, kvType: "f32", hashModel: false });
    const att: Float32Array[] = [];
    const ref = ffnActivationsAtPos0(new Map(tensors.map((t) => [t.name, t.values])), d, BYTE_VOCAB.byteBase + "k".charCodeAt(0), att);
    for (let l = 0; l < d.nLayer; l++) expect(relErr(ref[l]!, p.tasks.one!.layers[l]!.importance), `layer ${l}`).toBeLessThan(1e-4);
    expect(p.model.headGroups).toBe(d.nHeadKv);
    for (let l = 0; l < d.nLayer; l++) expect(headRelErr(groupMeans(att[l]!, d.nHeadKv), p.tasks.one!.layers[l]!.heads), `heads of layer ${l}`).toBeLessThan(1e-4);
  });
});

describe("process boundary", () => {
  it("a model the validator rejects never reaches llama.cpp", async () => {
    const { metadata, tensors } = encodeOracle("q4_0");
    metadata.delete("llama.attention.head_count");
    const bad = join(scratch.dir, "no-head-count.gguf");
    await writeGgufFile(bad, metadata, tensors);
    await expect(profileModel({ modelPath: bad, tasks: { a: ["abc"] } })).rejects.toBeInstanceOf(GgufFormatError);
    // llama.cpp v0.4.0 itself refuses this one without aborting: a request failure, child alive.
    await expect(profileModel({ modelPath: bad, tasks: { a: ["abc"] }, unsafeSkipValidation: true, hashModel: false })).rejects.toMatchObject({
      code: "ENGINE_REQUEST_FAILED",
    });
  });

  it("llama.cpp aborting the child (GGML_ASSERT) is an EngineError with the signal", async () => {
    const { metadata, tensors } = encodeOracle("q4_0");
    // llama.cpp v0.4.0: GGML_ASSERT(n_expert_used_max <= hparams.n_expert) aborts the process.
    metadata.set("llama.expert_used_count", kv.u32(2));
    const bad = join(scratch.dir, "expert-used-no-experts.gguf");
    await writeGgufFile(bad, metadata, tensors);
    const e = await profileModel({ modelPath: bad, tasks: { a: ["abc"] }, unsafeSkipValidation: true, hashModel: false }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe("ENGINE_CRASHED");
    expect((e as EngineError).details.signal).toBe("SIGABRT");
    expect(String((e as EngineError).details.stderr)).toMatch(/GGML_ASSERT/);
  });

  it("a killed child fails the pending run with ENGINE_CRASHED", async () => {
    const proc = await ProfileProcess.start();
    await proc.loadModel(files.f32);
    const run = proc.run({ letters: Array.from({ length: 400 }, () => LETTERS) });
    proc.kill();
    await expect(run).rejects.toMatchObject({ code: "ENGINE_CRASHED" });
    await proc.dispose();
  });

  it("rejects bad task names before starting anything", async () => {
    await expect(profileModel({ modelPath: files.f32, tasks: { "Bad Name": ["a"] } })).rejects.toMatchObject({ code: "PROFILE_BAD_TASK" });
  });
});

describe("imatrix", () => {
  let profile: Profile;
  beforeAll(async () => {
    profile = await profileModel({ modelPath: files.f32, tasks: { letters: LETTER_LINES, digits: DIGIT_LINES }, hashModel: false });
  });

  for (const format of ["gguf", "legacy"] as const) {
    it(`round-trips a profile through the ${format} imatrix format`, async () => {
      const path = join(scratch.dir, `letters.${format === "gguf" ? "imatrix.gguf" : "dat"}`);
      await writeImatrix(path, profileTaskImatrixEntries(profile, "letters"), { format, datasets: ["letters.txt"], chunkSize: 64 });
      if (format === "gguf") {
        const h = readGgufHeader(path);
        expect(h.tensors.map((t) => t.name)).toEqual(["blk.0.ffn_down.weight.in_sum2", "blk.0.ffn_down.weight.counts", "blk.1.ffn_down.weight.in_sum2", "blk.1.ffn_down.weight.counts"]);
        expect(h.metadata.get("general.type")?.value).toBe("imatrix");
      }
      const im = importImatrix(path);
      expect(im.format).toBe(format);
      expect(im.datasets).toEqual(["letters.txt"]);
      const layers = imatrixFfnLayers(im);
      expect(layers.map((l) => l.layer)).toEqual([0, 1]);
      const ms = profile.tasks.letters!.layers[0]!.meanSquare!;
      for (let i = 0; i < ms.length; i++) expect(layers[0]!.meanSquare[i]).toBeCloseTo(ms[i]!, 3);
      const task = imatrixTaskProfile(im, profile.model, path);
      if (format === "gguf") expect(task.tokens).toBe(profile.tasks.letters!.tokens);
      // An imatrix-derived task (importance = RMS) still singles out the skill neurons.
      const mixed: Profile = { ...profile, tasks: { letters: task, digits: profile.tasks.digits! } };
      expectOracleSelection(mixed);
    });
  }

  it("rejects files that are not imatrices", async () => {
    expect(() => importImatrix(files.f32)).toThrow(/not an imatrix/);
    const junk = join(scratch.dir, "junk.dat");
    writeFileSync(junk, Buffer.from([1, 0, 0, 0, 200, 0, 0, 0]));
    expect(() => importImatrix(junk)).toThrow(/IMATRIX|name length/);
  });
});

describe("secneuron profile (CLI) and quantizeModel", () => {
  it("writes a profile from corpus files and an imatrix", async () => {
    const letters = join(scratch.dir, "letters.txt");
    const digits = join(scratch.dir, "digits.txt");
    writeFileSync(letters, `${LETTER_LINES.join("\n")}\n\n`);
    writeFileSync(digits, DIGIT_LINES.join("\r\n"));
    const out = join(scratch.dir, "profile.json");
    const outs: string[] = [];
    const io = { out: (t: string) => outs.push(t), err: (t: string) => outs.push(t), isTTY: false };
    const code = await profileCommand.run({ model: files.q8_0, task: [`letters=${letters}`, `digits=${digits}`], out, json: true }, [], io);
    expect(code).toBe(0);
    const p = parseProfileText(readFileSync(out, "utf8"));
    expectOracleSelection(p);
    expect(p.source).toMatchObject({ "corpus.letters": "letters.txt", "corpus.digits": "digits.txt" });
    const summary = JSON.parse(outs[0]!) as { tasks: Record<string, { tokens: number }> };
    expect(summary.tasks.letters!.tokens).toBe(LETTER_LINES.join("").length);

    const im = join(scratch.dir, "digits.imatrix.gguf");
    await writeImatrix(im, profileTaskImatrixEntries(p, "digits"));
    const out2 = join(scratch.dir, "profile2.json");
    expect(await profileCommand.run({ model: files.q8_0, task: [`letters=${letters}`], imatrix: [`digits=${im}`], out: out2, "no-hash": true }, [], io)).toBe(0);
    expectOracleSelection(parseProfileText(readFileSync(out2, "utf8")));
    await expect(profileCommand.run({ model: files.q8_0, task: [`letters=${letters}`], out: out2 }, [], io)).rejects.toMatchObject({ code: "CLI_USAGE" });
  });

  it("quantizeModel (llama_model_quantize) makes a Q8_0 model that profiles the same", async () => {
    const out = join(scratch.dir, "oracle-requant-q8_0.gguf");
    const lib = fileURLToPath(new URL("../../dist/ffi/libllama.js", import.meta.url));
    const script = `import(${JSON.stringify(lib)}).then((m) => m.quantizeModel(process.argv[1], process.argv[2], "MOSTLY_Q8_0"))`;
    const r = spawnSync(process.execPath, ["-e", script, files.f32, out], { encoding: "utf8", timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const h = readGgufHeader(out);
    expect(h.tensors.find((t) => t.name === "blk.0.ffn_up.weight")?.type).toBe(GgmlType.Q8_0);
    expectOracleSelection(await profileModel({ modelPath: out, tasks: { letters: LETTER_LINES, digits: DIGIT_LINES }, hashModel: false }));
  });
});
