/**
 * Manifest hot reload through the running sidecar: adding, changing, removing and corrupting a
 * manifest file take effect without a restart; removal also revokes live variants (their rows
 * are zeroed in place) when no remaining manifest justifies them; a corrupt file keeps the last
 * good state in force.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ORACLE_PROMPTS } from "../../examples/fixtures/oracle-model.js";
import { openSealedModel } from "../../plugin/edges/unseal.js";
import { scratchDir } from "../helpers/tmp.js";
import { startSidecar, SUBJECTS, type Fixture } from "./helpers.js";
import { rawRequest } from "./raw-http.js";

const scratch = scratchDir("secneuron-reload-");
let f: Fixture;
const LETTERS = ORACLE_PROMPTS.find((p) => p.prompt === "abc")!;
const DIGITS = ORACLE_PROMPTS.find((p) => p.prompt === "123")!;
const logs: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  // Only alice (letters) and bob (digits) this time: each node is justified by one manifest.
  for (const k of Object.keys(SUBJECTS)) if (k !== "alice" && k !== "bob") delete (SUBJECTS as Record<string, unknown>)[k];
  f = await startSidecar(scratch.dir, { log: (l) => logs.push(l) });
}, 120_000);
afterAll(async () => { await f?.sidecar.close(); scratch.cleanup(); });

async function ask(token: string | undefined, prompt: string): Promise<{ status: number; text: string }> {
  const r = await rawRequest(f.sidecar.url, "POST", "/api/generate", [["authorization", `Bearer ${token}`], ["content-type", "application/json"]], JSON.stringify({ model: "oracle", prompt, stream: false, options: { temperature: 0, num_predict: 20 } }));
  return { status: r.status, text: r.status === 200 ? JSON.parse(r.body).response : r.body };
}
async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await get();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    v = await get();
  }
  return v;
}

describe("manifest hot reload", () => {
  it("adding a manifest lets its token in without a restart", async () => {
    const token = f.issue("dave", { attrs: ["task:digits"] });
    const r = await until(() => ask(token, "123"), (x) => x.status === 200);
    expect(r).toEqual({ status: 200, text: DIGITS.completion });
  });

  it("changing a manifest replaces it: the old token stops, the new one works with the new grants", async () => {
    const old = f.tokens.dave!;
    const fresh = f.issue("dave", { attrs: ["task:letters"] });
    expect(fresh).not.toBe(old);
    expect((await until(() => ask(old, "123"), (x) => x.status === 401)).status).toBe(401);
    expect(await ask(fresh, "abc")).toEqual({ status: 200, text: LETTERS.completion });
    expect(await ask(fresh, "123")).toEqual({ status: 200, text: DIGITS.brokenCompletion });
  });

  it("a corrupt file is rejected with a log line and the last good version stays in force", async () => {
    const file = join(f.manifestsDir, "bob.manifest.json");
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0x01;
    writeFileSync(file, bad);
    await until(async () => logs.some((l) => l.event === "manifest.rejected" || l.msg === "manifest.rejected" || JSON.stringify(l).includes("bob.manifest.json") && JSON.stringify(l).includes("reject")), (x) => x);
    expect(logs.some((l) => JSON.stringify(l).includes("bob.manifest.json"))).toBe(true);
    expect(await ask(f.tokens.bob, "123")).toEqual({ status: 200, text: DIGITS.completion });
    writeFileSync(file, "{ not json");
    await new Promise((r) => setTimeout(r, 600));
    expect(await ask(f.tokens.bob, "123")).toEqual({ status: 200, text: DIGITS.completion });
    writeFileSync(file, good);
  });

  it("removing a manifest denies its token and revokes the live variant in place", async () => {
    // dave (letters) and alice (letters) both justify the letters node; drop dave first.
    rmSync(join(f.manifestsDir, "dave.manifest.json"));
    expect((await until(() => ask(f.tokens.dave, "abc"), (x) => x.status === 401)).status).toBe(401);
    expect(await ask(f.tokens.alice, "abc")).toEqual({ status: 200, text: LETTERS.completion });
    // Now alice: nobody justifies the letters node any more.
    const variantDir = join(scratch.dir, "variants");
    const model = openSealedModel(join(scratch.dir, "models", "oracle.sn.gguf"));
    const letters = model.info.nodes.findIndex((n) => n.id === "letters");
    const lettersRowsZero = () => {
      const files = readdirSync(variantDir).filter((x) => x.endsWith(".gguf")).map((x) => readFileSync(join(variantDir, x)));
      return files.map((b) => model.rows[letters]!.every((r) => b.subarray(r.offset, r.offset + r.length).every((x) => x === 0)));
    };
    expect(lettersRowsZero()).toContain(false); // some live variant has letters decrypted
    rmSync(join(f.manifestsDir, "alice.manifest.json"));
    expect((await until(() => ask(f.tokens.alice, "abc"), (x) => x.status === 401)).status).toBe(401);
    await until(async () => lettersRowsZero().every(Boolean), (x) => x);
    expect(lettersRowsZero().every(Boolean)).toBe(true);
    expect(logs.some((l) => l.msg === "manifest revoked" && l.subject === "alice" && Number(l.variantsRevoked) >= 1)).toBe(true);
    // bob is untouched.
    expect(await ask(f.tokens.bob, "123")).toEqual({ status: 200, text: DIGITS.completion });
  });
});
