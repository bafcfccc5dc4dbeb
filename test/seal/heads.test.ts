/**
 * Sealing attention head groups (the second neuron kind) on a random llama model with live
 * grouped-query attention (4 heads, 2 kv heads, head dim 32): the sealed file parses everywhere
 * and loads, an admin variant is byte-identical to the input and generates the same text, a
 * variant without a head node has those q/k/v rows zeroed, and the heads key is signed.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { kv, type GgufHeader } from "../../plugin/core/gguf/types.js";
import { GgufValueType } from "../../plugin/core/gguf/constants.js";
import { parseProfile, type Profile } from "../../plugin/core/profile/profile.js";
import { headGroupRowCount, nodeRows } from "../../plugin/core/seal/plan.js";
import { decodeSealedMetadata, verifySealedHeader } from "../../plugin/core/seal/sealed-metadata.js";
import { summarizeGguf } from "../../plugin/core/gguf/summary.js";
import { readGgufHeader } from "../../plugin/edges/gguf-file.js";
import { sealModel } from "../../plugin/edges/seal.js";
import { openSealedModel, unsealModel } from "../../plugin/edges/unseal.js";
import { EngineProcess } from "../../plugin/edges/engine/engine-process.js";
import type { Authority } from "../../plugin/edges/authority.js";
import { writeRandomLlamaModel } from "../../examples/random-model/random-model.js";
import { hfDisagreements } from "../helpers/hf-crosscheck.js";
import { scratchDir } from "../helpers/tmp.js";
import { makeAuthority, userKey } from "./helpers.js";

const DIMS = { contextLength: 256, nEmbd: 128, nLayer: 2, nFf: 256, nHead: 4, nHeadKv: 2, rmsEpsilon: 1e-5 };
const HD = 32;
const ROWS_PER_GROUP = (4 / 2 + 2) * HD; // q: r*hd, k: hd, v: hd
const PROMPTS = ["hello world", "The quick brown fox", "1 + 2 = "];
const MAX_TOKENS = 12;

/** x: FFN neurons 0..2 of layer 0 and head group 0 of layer 0; y: head group 1 of layer 1 only. */
function profile(): Profile {
  const ffn = (hot: number[]) => Array.from({ length: DIMS.nFf }, (_, i) => (hot.includes(i) ? 5 : 1));
  return parseProfile({
    format: "secneuron-profile", version: 1,
    model: { architecture: "llama", blockCount: 2, feedForwardLength: DIMS.nFf, headGroups: 2 },
    tasks: {
      x: { tokens: 0, layers: [{ layer: 0, importance: ffn([0, 1, 2]), heads: [5, 1] }, { layer: 1, importance: ffn([]), heads: [1, 1] }] },
      y: { tokens: 0, layers: [{ layer: 0, importance: ffn([3, 4]), heads: [1, 1] }, { layer: 1, importance: ffn([]), heads: [1, 5] }] },
    },
  });
}

const scratch = scratchDir("secneuron-heads-");
let authority: Authority;
let engine: EngineProcess;

beforeAll(async () => {
  authority = makeAuthority(join(scratch.dir, "authority"));
  engine = await EngineProcess.start({ threads: 1 });
});
afterAll(async () => {
  await engine?.dispose();
  scratch.cleanup();
});

async function generate(path: string): Promise<string[]> {
  await engine.loadModel(path, { contextSize: 64 });
  return engine.complete(PROMPTS, { maxTokens: MAX_TOKENS });
}

/** The data sections with the header stripped (a variant keeps the sealed header). */
function data(path: string, h: GgufHeader = readGgufHeader(path)): Buffer {
  return readFileSync(path).subarray(h.dataOffset);
}

// Both types run the detection scan over FFN and attention rows (the random-model generator keeps
// the reference quantizers' block invariants, so its short Q8_0 rows read as weights).
describe.each([["F16", GgmlType.F16], ["Q8_0", GgmlType.Q8_0]] as const)("sealing head groups of a %s random model", (label, type) => {
  let input: string;
  let sealed: string;
  let inputOut: string[];

  beforeAll(async () => {
    input = join(scratch.dir, `random-${label}.gguf`);
    sealed = join(scratch.dir, `random-${label}.sn.gguf`);
    await writeRandomLlamaModel(input, { type, dims: DIMS, seed: 7 });
    const summary = await sealModel({ model: input, out: sealed, profile: profile(), lock: { tasks: ["x", "y"], count: { x: 3, y: 0 }, headCount: 1 }, authority });
    expect(summary.nodes.map((n) => [n.id, n.neurons, n.heads, n.rows])).toEqual([["x", 3, 1, 6 + ROWS_PER_GROUP], ["y", 0, 1, ROWS_PER_GROUP]]);
    expect(summary.sealedHeads).toBe(2);
    inputOut = await generate(input);
  });

  it("is a valid sealed GGUF: heads in the row map, @huggingface/gguf agrees, llama.cpp loads it", async () => {
    const h = readGgufHeader(sealed);
    expect(await hfDisagreements(sealed, h)).toEqual([]);
    const m = openSealedModel(sealed);
    expect(m.info.nodes.map((n) => [n.id, [...n.neurons], [...n.heads]])).toEqual([["x", [[0, [0, 1, 2]]], [[0, [0]]]], ["y", [], [[1, [1]]]]]);
    expect(headGroupRowCount(m.hyperparams)).toBe(ROWS_PER_GROUP);
    // Row order: FFN gate/up pairs, then q rows [0, 64), k rows [0, 32), v rows [0, 32) of group 0.
    const names = m.rows[0]!.map((r) => `${m.header.tensors[r.tensorId]!.name}#${r.row}`);
    expect(names.slice(0, 7)).toEqual(["blk.0.ffn_gate.weight#0", "blk.0.ffn_up.weight#0", "blk.0.ffn_gate.weight#1", "blk.0.ffn_up.weight#1", "blk.0.ffn_gate.weight#2", "blk.0.ffn_up.weight#2", "blk.0.attn_q.weight#0"]);
    expect(names[6 + 63]).toBe("blk.0.attn_q.weight#63");
    expect(names[6 + 64]).toBe("blk.0.attn_k.weight#0");
    expect(names[6 + 96]).toBe("blk.0.attn_v.weight#0");
    // y: group 1 of layer 1 is q rows [64, 128), k and v rows [32, 64).
    expect(m.rows[1]!.map((r) => `${m.header.tensors[r.tensorId]!.name}#${r.row}`).filter((_, i) => [0, 63, 64, 96, 127].includes(i)))
      .toEqual(["blk.1.attn_q.weight#64", "blk.1.attn_q.weight#127", "blk.1.attn_k.weight#32", "blk.1.attn_v.weight#32", "blk.1.attn_v.weight#63"]);
    const s = summarizeGguf(h);
    expect(s.sealed && "nodes" in s.sealed && s.sealed.nodes.map((n) => [n.id, n.heads, n.headsPerLayer])).toEqual([["x", 1, { 0: 1 }], ["y", 1, { 1: 1 }]]);
    await engine.loadModel(sealed, { contextSize: 64 });
  });

  it("an admin variant equals the input byte for byte and generates the same text", async () => {
    const out = join(scratch.dir, `${label}-admin.gguf`);
    const v = await unsealModel({ sealed, userKey: userKey(authority, ["admin"]), out });
    expect(v.nodeIds).toEqual(["x", "y"]);
    // Attention rows are scanned too: 2 layers x (128 q + 64 k + 64 v) + 1024 FFN rows.
    expect(v.detection).toMatchObject({ rowsScanned: 1024 + 512, zeroedRows: 0, sealedRowsSeen: 6 + 2 * ROWS_PER_GROUP });
    await v.close();
    expect(data(out).equals(data(input))).toBe(true);
    expect(await generate(out)).toEqual(inputOut);
  });

  it("a variant without the head node has its q/k/v rows zeroed, the rest intact", async () => {
    const out = join(scratch.dir, `${label}-x.gguf`);
    const v = await unsealModel({ sealed, userKey: userKey(authority, ["task:x"]), out });
    expect(v.nodeIds).toEqual(["x"]);
    await v.close();
    const m = openSealedModel(sealed);
    const got = Buffer.from(data(out));
    const want = Buffer.from(data(input));
    for (const r of m.rows[1]!) {
      const off = r.offset - m.header.dataOffset;
      expect(got.subarray(off, off + r.length).every((b) => b === 0)).toBe(true);
      want.fill(0, off, off + r.length);
    }
    expect(got.equals(want)).toBe(true);
    const outText = await generate(out);
    expect(outText).not.toEqual(inputOut);
  });
});

describe("the heads key is signed and checked", () => {
  it("a changed, removed or out-of-range heads map is rejected", async () => {
    const input = join(scratch.dir, "tamper.gguf");
    const sealed = join(scratch.dir, "tamper.sn.gguf");
    await writeRandomLlamaModel(input, { type: GgmlType.Q8_0, dims: DIMS, seed: 3 });
    await sealModel({ model: input, out: sealed, profile: profile(), lock: { tasks: ["x", "y"], count: { x: 3, y: 0 }, headCount: 1 }, authority });
    const h = readGgufHeader(sealed);
    const m = openSealedModel(sealed);
    const hp = m.hyperparams;
    expect(verifySealedHeader(h, decodeSealedMetadata(h, hp))).toBe(true);
    const variant = (key: string, value: ReturnType<typeof kv.u32> | undefined): GgufHeader => {
      const md = new Map(h.metadata);
      if (value) md.set(key, value); else md.delete(key);
      return { ...h, metadata: md };
    };
    const u32s = (v: number[]) => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.UINT32, value: v }) as never;
    // Move y's group to group 0 of layer 1: still well formed, but the signature breaks.
    const moved = variant("secneuron.node.1.heads", u32s([1, 1, 0]));
    expect(verifySealedHeader(moved, decodeSealedMetadata(moved, hp))).toBe(false);
    // Removing the heads key leaves a node with nothing sealed (and a wrong tag count).
    expect(() => decodeSealedMetadata(variant("secneuron.node.1.heads", undefined), hp)).toThrow(/at least one neuron or head group/);
    expect(() => decodeSealedMetadata(variant("secneuron.node.0.heads", undefined), hp)).toThrow(/secneuron\.node\.0\.tags.*expected/);
    expect(() => decodeSealedMetadata(variant("secneuron.node.1.heads", u32s([1, 1, 2])), hp)).toThrow(/head group 2 in layer 1 is past the width 2/);
    expect(() => decodeSealedMetadata(variant("secneuron.node.1.heads", u32s([0, 1, 0])), hp)).toThrow(/head group 0 of layer 0 belongs to two nodes/);
    expect(() => decodeSealedMetadata(variant("secneuron.node.1.heads", kv.u32(1)), hp)).toThrow(/must be an array of u32/);
    // A model without grouped heads to match: the row map cannot be laid out.
    expect(() => nodeRows(h, { ...hp, headCountKv: 3 }, m.info.nodes[1]!)).toThrow(/not a multiple/);
    expect(m.info.nodes[1]!.heads.get(1)).toEqual([1]);
  });
});

describe("CLI: seal --head-count, inspect shows head groups", () => {
  it("seals head groups from the command line and lists them per node", async () => {
    const { main } = await import("../../plugin/cli/main.js");
    const { writeFileSync } = await import("node:fs");
    const io = () => {
      const x = { stdout: "", stderr: "", isTTY: false, out(t: string) { x.stdout += `${t}\n`; }, err(t: string) { x.stderr += `${t}\n`; } };
      return x;
    };
    const input = join(scratch.dir, "cli.gguf");
    const out = join(scratch.dir, "cli.sn.gguf");
    const prof = join(scratch.dir, "cli-profile.json");
    await writeRandomLlamaModel(input, { type: GgmlType.F16, dims: DIMS, seed: 5 });
    writeFileSync(prof, JSON.stringify(profile()));
    const authDir = join(scratch.dir, "cli-authority");
    const a = io();
    expect(await main(["authority", "init", authDir], a), a.stdout + a.stderr).toBe(0);
    const s = io();
    const code = await main(["seal", "--model", input, "--profile", prof, "--lock", "x,y", "--authority", authDir, "--out", out, "--count", "2", "--head-count", "1"], s);
    expect(code, s.stdout + s.stderr).toBe(0);
    expect(s.stdout).toMatch(/4 neurons, 2 head groups/);
    const i = io();
    expect(await main(["inspect", out], i), i.stderr).toBe(0);
    expect(i.stdout).toMatch(/2 head groups/);
    expect(i.stdout).toMatch(/1 head groups\s+layers 0:1/);
    expect(i.stdout).toMatch(/1 head groups\s+layers 1:1/);
    const bad = io();
    expect(await main(["seal", "--model", input, "--profile", prof, "--lock", "x", "--authority", authDir, "--out", join(scratch.dir, "bad.sn.gguf"), "--head-count", "9"], bad)).not.toBe(0);
    expect(bad.stderr).toMatch(/head group count 9/);
  });
});
