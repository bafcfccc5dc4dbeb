/**
 * Live grant and revoke: llama.cpp (CPU, memory-mapped) computes straight from the variant file,
 * so decrypting or zeroing rows in place changes what an already loaded model outputs, without a
 * reload. And the variant cache: reuse per node set, LRU eviction within a budget.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineProcess } from "../../plugin/edges/engine/engine-process.js";
import { openSealedModel, unlockNodeKeys, Variant, type SealedModel } from "../../plugin/edges/unseal.js";
import { VariantCache } from "../../plugin/edges/variant-cache.js";
import type { Authority } from "../../plugin/edges/authority.js";
import { ORACLE_MAX_TOKENS, ORACLE_PROMPTS } from "../../examples/fixtures/oracle-model.js";
import { oracleFixtures } from "../engine/helpers.js";
import { scratchDir } from "../helpers/tmp.js";
import { makeAuthority, sealOracle, userKey } from "./helpers.js";

const scratch = scratchDir("secneuron-live-");
let authority: Authority;
let model: SealedModel;
let engine: EngineProcess;

beforeAll(async () => {
  const fx = await oracleFixtures();
  authority = makeAuthority(join(scratch.dir, "authority"));
  await sealOracle(authority, fx.q8_0, join(scratch.dir, "oracle.sn.gguf"));
  model = openSealedModel(join(scratch.dir, "oracle.sn.gguf"));
  engine = await EngineProcess.start({ threads: 1 });
});
afterAll(async () => {
  await engine.dispose();
  scratch.cleanup();
});

const nodeIndex = (id: string) => model.info.nodes.findIndex((n) => n.id === id);
async function skills(): Promise<{ letters: boolean; digits: boolean }> {
  const out = await engine.complete(ORACLE_PROMPTS.map((p) => p.prompt), { maxTokens: ORACLE_MAX_TOKENS });
  const ok = (skill: string) => ORACLE_PROMPTS.every((p, i) => p.skill !== skill || out[i] === p.completion);
  const broken = (skill: string) => ORACLE_PROMPTS.every((p, i) => p.skill !== skill || out[i] === p.brokenCompletion);
  const state = { letters: ok("letters"), digits: ok("digits") };
  // Each skill is either exact or exactly the broken continuation: nothing in between.
  expect(state.letters || broken("letters")).toBe(true);
  expect(state.digits || broken("digits")).toBe(true);
  return state;
}

describe("live grant and revoke on a memory-mapped variant", () => {
  it("grant and revoke change the loaded model's output with no reload", async () => {
    const admin = unlockNodeKeys(model, userKey(authority, ["admin"]));
    const letters = new Map([[nodeIndex("letters"), admin.get(nodeIndex("letters"))!]]);
    const digits = new Map([[nodeIndex("digits"), admin.get(nodeIndex("digits"))!]]);
    const v = await Variant.create(model, join(scratch.dir, "live.gguf"), letters);
    await engine.loadModel(v.path, { contextSize: 64, useMmap: true });
    const loadedAt = engine.loadedModel;
    expect(await skills()).toEqual({ letters: true, digits: false });
    await v.grant(digits);
    expect(await skills()).toEqual({ letters: true, digits: true });
    await v.revoke([nodeIndex("letters")]);
    expect(await skills()).toEqual({ letters: false, digits: true });
    await v.revoke([nodeIndex("digits")]);
    expect(await skills()).toEqual({ letters: false, digits: false });
    await v.grant(letters);
    expect(await skills()).toEqual({ letters: true, digits: false });
    expect(engine.loadedModel).toBe(loadedAt);
    expect(v.nodeIds).toEqual(["letters"]);
    await engine.unloadModel();
    await v.dispose();
    expect(existsSync(v.path)).toBe(false);
    for (const k of admin.values()) k.fill(0);
  });
});

describe("variant cache", () => {
  it("reuses a variant per node set, evicts the least recently used within the budget, revokes live", async () => {
    const size = model.header.fileSize;
    const cache = new VariantCache({ dir: scratch.dir, budgetBytes: size * 2 + 10 });
    const keysFor = (attrs: string[]) => unlockNodeKeys(model, userKey(authority, attrs));
    const a = await cache.acquire(model, keysFor(["task:letters"]));
    const a2 = await cache.acquire(model, keysFor(["task:letters"]));
    expect(a2.variant).toBe(a.variant);
    const b = await cache.acquire(model, keysFor(["task:digits"]));
    expect(cache.size).toBe(2);
    // Both held: no room for a third.
    await expect(cache.acquire(model, keysFor(["admin"]))).rejects.toMatchObject({ code: "VARIANT_CACHE_FULL" });
    a.release(); a2.release();
    const c = await cache.acquire(model, keysFor(["admin"]));
    expect(cache.size).toBe(2);
    expect(existsSync(a.variant.path)).toBe(false); // evicted: least recently used and idle
    expect(c.variant.nodeIds.sort()).toEqual(["digits", "letters"]);
    expect(await cache.revokeNodes(model.info.plaintextSha256, ["digits"])).toBe(2);
    expect(c.variant.nodeIds).toEqual(["letters"]);
    expect(b.variant.nodeIds).toEqual([]);
    b.release(); c.release();
    await cache.dispose();
    expect(existsSync(c.variant.path)).toBe(false);
  });
});
