/**
 * Tampering with a sealed model: random single-bit flips in sealed row data and in the
 * `secneuron.*` metadata must every one be detected by unseal (with an admin key, which decrypts
 * every node), and no variant file may remain after any failure.
 */
import { copyFileSync, readdirSync, readFileSync, openSync, readSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecNeuronError } from "../../plugin/errors.js";
import { openSealedModel, unlockNodeKeys, Variant } from "../../plugin/edges/unseal.js";
import type { Authority } from "../../plugin/edges/authority.js";
import { Xoshiro128 } from "../../examples/random-model/random-model.js";
import { oracleFixtures } from "../engine/helpers.js";
import { scratchDir } from "../helpers/tmp.js";
import { makeAuthority, sealOracle, userKey } from "./helpers.js";

const scratch = scratchDir("secneuron-tamper-");
let authority: Authority;
let sealed: string;
afterAll(() => scratch.cleanup());

beforeAll(async () => {
  const fx = await oracleFixtures();
  authority = makeAuthority(join(scratch.dir, "authority"));
  sealed = join(scratch.dir, "oracle.sn.gguf");
  await sealOracle(authority, fx.q4_0, sealed);
});

function flipBit(path: string, offset: number, bit: number): void {
  const fd = openSync(path, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  b[0]! ^= 1 << bit;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}

describe("tamper detection", () => {
  it("detects 1,200 random single-bit flips in sealed rows and sealed metadata", async () => {
    const seed = Number(process.env.TAMPER_SEED ?? 7);
    const rng = new Xoshiro128(seed);
    const model = openSealedModel(sealed);
    // The node keys come from the intact model (CP-ABE is not what row flips attack).
    const keys = unlockNodeKeys(model, userKey(authority, ["admin"]));
    expect(keys.size).toBe(2);
    const bytes = readFileSync(sealed);
    const metaStart = bytes.indexOf(Buffer.from("secneuron.version")) - 8;
    const metaEnd = model.header.tensors[0]!.infoOffset;
    expect(metaStart).toBeGreaterThan(0);
    const rows = model.rows.flat();
    const work = join(scratch.dir, "work.sn.gguf");
    copyFileSync(sealed, work);
    const outDir = join(scratch.dir, "out");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(outDir);
    const codes = new Map<string, number>();
    let detected = 0;
    const N = 1200;
    for (let i = 0; i < N; i++) {
      const inRows = i % 2 === 0;
      let offset: number;
      if (inRows) {
        const r = rows[rng.next() % rows.length]!;
        offset = r.offset + (rng.next() % r.length);
      } else {
        offset = metaStart + (rng.next() % (metaEnd - metaStart));
      }
      const bit = rng.next() % 8;
      flipBit(work, offset, bit);
      try {
        const m = inRows ? { ...model, path: work } : openSealedModel(work);
        const v = await Variant.create(m, join(outDir, "v.gguf"), keys);
        await v.dispose();
        throw new Error(`flip at byte ${offset} bit ${bit} (${inRows ? "row" : "metadata"}) was not detected`);
      } catch (e) {
        if (!(e instanceof SecNeuronError)) throw e;
        detected++;
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      } finally {
        flipBit(work, offset, bit);
      }
      expect(readdirSync(outDir)).toEqual([]);
    }
    console.log(`tamper seed ${seed}: ${detected}/${N} detected, by code ${JSON.stringify(Object.fromEntries(codes))}`);
    expect(detected).toBe(N);
    expect(codes.get("E_ROW_AUTH")).toBe(N / 2);
    for (const k of keys.values()) k.fill(0);
  }, 300_000);
});
