import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowRange } from "../../plugin/core/gguf/rows.js";
import { validateLlamaModel } from "../../plugin/core/gguf/llama-check.js";
import { readGgufHeader } from "../../plugin/edges/gguf-file.js";
import { EngineProcess } from "../../plugin/edges/engine/engine-process.js";
import { openSealedModel, unlockNodeKeys, unsealModel, Variant } from "../../plugin/edges/unseal.js";
import type { Authority } from "../../plugin/edges/authority.js";
import { ORACLE_MAX_TOKENS, ORACLE_PROMPTS, ORACLE_SKILLS, ORACLE_TYPES } from "../../examples/fixtures/oracle-model.js";
import { hfDisagreements } from "../helpers/hf-crosscheck.js";
import { oracleFixtures } from "../engine/helpers.js";
import { scratchDir } from "../helpers/tmp.js";
import { KEY_SETS, makeAuthority, sealedPath, sealOracle, userKey } from "./helpers.js";

const scratch = scratchDir("secneuron-seal-");
let authority: Authority;
let fixtures: Awaited<ReturnType<typeof oracleFixtures>>;
let engine: EngineProcess;

beforeAll(async () => {
  fixtures = await oracleFixtures();
  authority = makeAuthority(join(scratch.dir, "authority"));
  engine = await EngineProcess.start({ threads: 1 });
});
afterAll(async () => {
  await engine?.dispose();
  scratch.cleanup();
});

const rowsOf = (skill: "letters" | "digits") => ORACLE_SKILLS[skill].neurons;

describe.each(ORACLE_TYPES.map((t) => t.label))("seal and unseal the %s oracle", (label) => {
  let sealed: string;
  let input: Buffer;

  beforeAll(async () => {
    sealed = sealedPath(scratch.dir, label);
    const summary = await sealOracle(authority, fixtures[label], sealed);
    expect(summary.nodes.map((n) => [n.id, n.neurons])).toEqual([["digits", 10], ["letters", 26]]);
    input = readFileSync(fixtures[label]);
  });

  it("is a valid GGUF: our reader and @huggingface/gguf agree, llama.cpp's checks pass, it loads", async () => {
    const h = readGgufHeader(sealed);
    expect(validateLlamaModel(h).feedForwardLength).toBe(512);
    expect(await hfDisagreements(sealed, h)).toEqual([]);
    const info = await engine.loadModel(sealed, { contextSize: 64 });
    expect(info).toBeTruthy();
    // Sealed rows are ciphertext: the skills are gone from the sealed file itself.
    const out = await engine.complete(ORACLE_PROMPTS.map((p) => p.prompt), { maxTokens: ORACLE_MAX_TOKENS });
    ORACLE_PROMPTS.forEach((p, i) => expect(out[i]).not.toBe(p.completion));
  });

  it("changes nothing but the sealed rows, and the input is untouched", () => {
    expect(readFileSync(fixtures[label]).equals(input)).toBe(true);
    const inH = readGgufHeader(fixtures[label]);
    const m = openSealedModel(sealed);
    const out = readFileSync(sealed);
    const sealedRanges = m.rows.flat().map((r) => [r.offset - m.header.dataOffset, r.length] as const);
    const inData = Buffer.from(input.subarray(inH.dataOffset));
    const outData = Buffer.from(out.subarray(m.header.dataOffset));
    for (const [off, len] of sealedRanges) {
      expect(outData.subarray(off, off + len).equals(inData.subarray(off, off + len))).toBe(false);
      outData.fill(0, off, off + len);
      inData.fill(0, off, off + len);
    }
    expect(outData.equals(inData)).toBe(true);
  });

  for (const [name, set] of Object.entries(KEY_SETS)) {
    it(`a '${name}' key gives ${set.letters ? "working" : "broken"} letters and ${set.digits ? "working" : "broken"} digits`, async () => {
      const out = join(scratch.dir, `${label}-${name}.gguf`);
      const v = await unsealModel({ sealed, userKey: userKey(authority, set.attrs), out });
      expect(v.nodeIds.sort()).toEqual([set.digits && "digits", set.letters && "letters"].filter(Boolean));
      await v.close();
      // Authorized rows come back byte-identical to the input; unauthorized sealed rows are zero.
      const h = readGgufHeader(out);
      const inH = readGgufHeader(fixtures[label]);
      const variant = readFileSync(out);
      for (const skill of ["letters", "digits"] as const) {
        for (const kind of ["ffn_gate", "ffn_up"]) {
          const t = h.tensors.find((x) => x.name === `blk.0.${kind}.weight`)!;
          const ti = inH.tensors.find((x) => x.name === t.name)!;
          for (const row of rowsOf(skill)) {
            const r = rowRange(h, t, row);
            const got = variant.subarray(r.offset, r.offset + r.length);
            const ri = rowRange(inH, ti, row);
            if (set[skill]) expect(got.equals(input.subarray(ri.offset, ri.offset + ri.length))).toBe(true);
            else expect(got.every((b) => b === 0)).toBe(true);
          }
        }
      }
      await engine.loadModel(out, { contextSize: 64 });
      const got = await engine.complete(ORACLE_PROMPTS.map((p) => p.prompt), { maxTokens: ORACLE_MAX_TOKENS });
      ORACLE_PROMPTS.forEach((p, i) => {
        expect(got[i], `${p.prompt} with ${name}`).toBe(set[p.skill] ? p.completion : p.brokenCompletion);
      });
      await engine.unloadModel();
    });
  }

  it("least privilege: an admin asking for letters gets only the letters node", async () => {
    const m = openSealedModel(sealed);
    const keys = unlockNodeKeys(m, userKey(authority, ["admin"]), ["letters"]);
    expect([...keys.keys()].map((k) => m.info.nodes[k]!.id)).toEqual(["letters"]);
    expect(() => unlockNodeKeys(m, userKey(authority, ["admin"]), ["code"])).toThrow(/task 'code' is not sealed/);
  });
});

describe("unseal refuses", () => {
  it("persistent storage unless allowed, and leaves nothing behind", async () => {
    const sealed = sealedPath(scratch.dir, "q8_0");
    const m = openSealedModel(sealed);
    const dir = join(process.cwd(), ".cache");
    await expect(Variant.create(m, join(dir, "variant.gguf"), new Map())).rejects.toMatchObject({ code: "UNSEAL_PERSISTENT_TARGET" });
    expect(readdirSync(dir).filter((f) => f.includes("variant"))).toEqual([]);
  });

  it("a key from a foreign authority", async () => {
    const other = makeAuthority(join(scratch.dir, "other-authority"));
    await expect(unsealModel({ sealed: sealedPath(scratch.dir, "q8_0"), userKey: userKey(other, ["admin"]), out: join(scratch.dir, "foreign.gguf") }))
      .rejects.toMatchObject({ code: "UNSEAL_FOREIGN_AUTHORITY" });
    expect(readdirSync(scratch.dir).filter((f) => f.includes("foreign"))).toEqual([]);
  });

  it("sealing a sealed model, or a profile for another model", async () => {
    await expect(sealOracle(authority, sealedPath(scratch.dir, "q8_0"), join(scratch.dir, "twice.sn.gguf"))).rejects.toMatchObject({ code: "SEAL_ALREADY_SEALED" });
  });
});

describe("detection backstop", () => {
  it("zeroes rows that look encrypted but are not in the row map, and recognises every sealed row", async () => {
    const { openSync, writeSync, closeSync, copyFileSync } = await import("node:fs");
    const { randomFillSync } = await import("node:crypto");
    const sealed = sealedPath(scratch.dir, "f16");
    const rogue = join(scratch.dir, "rogue.sn.gguf");
    copyFileSync(sealed, rogue);
    const m = openSealedModel(rogue);
    const t = m.header.tensors.find((x) => x.name === "blk.1.ffn_up.weight")!;
    const rogueRows = [5, 77, 300];
    const fd = openSync(rogue, "r+");
    for (const row of rogueRows) {
      const r = rowRange(m.header, t, row);
      writeSync(fd, randomFillSync(Buffer.alloc(r.length)), 0, r.length, r.offset);
    }
    closeSync(fd);
    const out = join(scratch.dir, "rogue-variant.gguf");
    const v = await unsealModel({ sealed: rogue, userKey: userKey(authority, ["admin"]), out });
    expect(v.detection).toMatchObject({ zeroedRows: 3, sealedRowsSeen: 72 });
    expect(v.detection!.rowsScanned).toBe(2 * 2 * 512);
    const bytes = readFileSync(out);
    for (const row of rogueRows) {
      const r = rowRange(m.header, t, row);
      expect(bytes.subarray(r.offset, r.offset + r.length).every((b) => b === 0)).toBe(true);
    }
    await v.dispose();
  });
});
