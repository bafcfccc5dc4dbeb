import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../plugin/cli/main.js";
import type { CliIo } from "../../plugin/cli/args.js";
import { completeInChild } from "../../plugin/edges/engine/engine-process.js";
import { oracleProfile } from "../../examples/fixtures/oracle-profile.js";
import { ORACLE_PROMPTS } from "../../examples/fixtures/oracle-model.js";
import { oracleFixtures } from "../engine/helpers.js";
import { scratchDir } from "../helpers/tmp.js";

const s = scratchDir("secneuron-cli-seal-");
const p = (f: string) => join(s.dir, f);
afterAll(() => s.cleanup());

function io(): CliIo & { stdout: string; stderr: string } {
  const x = { stdout: "", stderr: "", isTTY: false, out(t: string) { x.stdout += `${t}\n`; }, err(t: string) { x.stderr += `${t}\n`; } };
  return x;
}
async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string; json: any }> {
  const x = io();
  const code = await main(args, x);
  let json: any;
  try { json = JSON.parse(x.stdout); } catch { /* text output */ }
  return { code, stdout: x.stdout, stderr: x.stderr, json };
}
async function issue(authority: string, subject: string, attrs: string, ...extra: string[]): Promise<{ manifest: string; token: string }> {
  const r = await run("issue", "--authority", authority, "--subject", subject, "--attrs", attrs, "--out", p(`${subject}.manifest.json`), "--json", ...extra);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return { manifest: p(`${subject}.manifest.json`), token: r.json.token };
}

let letters: { manifest: string; token: string };

beforeAll(async () => {
  const fx = await oracleFixtures();
  writeFileSync(p("profile.json"), JSON.stringify(oracleProfile()));
  expect((await run("authority", "init", p("auth"), "--json")).code).toBe(0);
  const r = await run("seal", "--model", fx.f16, "--profile", p("profile.json"), "--lock", "letters,digits", "--authority", p("auth"), "--out", p("oracle.sn.gguf"), "--json");
  expect(r.code, r.stderr).toBe(0);
  expect(r.json.nodes.map((n: any) => n.id)).toEqual(["digits", "letters"]);
  letters = await issue(p("auth"), "alice", "task:letters");
}, 120_000);

describe("secneuron seal / unseal / inspect on the command line", () => {
  it("unseal with a letters manifest gives letters and not digits", async () => {
    const r = await run("unseal", "--model", p("oracle.sn.gguf"), "--manifest", letters.manifest, "--token", letters.token, "--out", p("alice.gguf"), "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ decryptedNodes: ["letters"], zeroedNodes: ["digits"], subject: "alice" });
    const out = await completeInChild({ modelPath: p("alice.gguf"), prompts: ORACLE_PROMPTS.map((x) => x.prompt), maxTokens: 20 });
    ORACLE_PROMPTS.forEach((x, i) => expect(out[i]).toBe(x.skill === "letters" ? x.completion : x.brokenCompletion));
  });

  it("inspect shows the policy tree of a sealed model", async () => {
    const r = await run("inspect", p("oracle.sn.gguf"), "--json");
    expect(r.code).toBe(0);
    expect(r.json.sealed.nodes.map((n: any) => [n.id, n.neurons, n.policies])).toEqual([["digits", 10, ["task:digits or admin"]], ["letters", 26, ["task:letters or admin"]]]);
    expect(r.json.sealed.nodes[1].perLayer).toEqual({ "0": 26 });
    expect(r.json.sealed.sealedBytes).toBeGreaterThan(0);
    expect(r.json.sealed.signatureValid).toBe(true);
    const t = await run("inspect", p("oracle.sn.gguf"));
    expect(t.stdout).toMatch(/sealed\s+2 nodes, 36 neurons/);
  });

  const failures: Array<[string, () => Promise<string[]>, string]> = [
    ["a wrong token", async () => ["--manifest", letters.manifest, "--token", "sn_" + "A".repeat(43)], "MANIFEST_WRONG_TOKEN"],
    ["a manifest from a foreign authority", async () => {
      await run("authority", "init", p("other"));
      const m = await issue(p("other"), "mallory", "admin");
      return ["--manifest", m.manifest, "--token", m.token];
    }, "MANIFEST_WRONG_AUTHORITY"],
    ["an expired manifest", async () => {
      const m = await issue(p("auth"), "bob", "admin", "--not-before", "2020-01-01", "--expires", "2020-02-01");
      return ["--manifest", m.manifest, "--token", m.token];
    }, "MANIFEST_EXPIRED"],
    ["a manifest scoped to another model", async () => {
      const m = await issue(p("auth"), "carol", "admin", "--models", "llama3");
      return ["--manifest", m.manifest, "--token", m.token];
    }, "UNSEAL_MODEL_OUT_OF_SCOPE"],
  ];
  for (const [name, args, code] of failures) {
    it(`fails with ${code} on ${name}, leaving no variant`, async () => {
      const r = await run("unseal", "--model", p("oracle.sn.gguf"), ...(await args()), "--out", p("denied.gguf"), "--json");
      expect(r.code).toBe(1);
      expect(r.json.error.code).toBe(code);
      expect(existsSync(p("denied.gguf"))).toBe(false);
      expect(readdirSync(s.dir).filter((f) => f.includes("denied"))).toEqual([]);
    });
  }

  it("usage errors are precise", async () => {
    expect((await run("seal", "--model", "x")).code).toBe(2);
    expect((await run("unseal", "--model", p("oracle.sn.gguf"))).stderr).toMatch(/--manifest is required|--out is required/);
    const r = await run("seal", "--model", p("oracle.sn.gguf"), "--profile", p("profile.json"), "--lock", "letters", "--authority", p("auth"), "--out", p("oracle.sn.gguf"));
    expect(r.stderr).toMatch(/must differ|exists/);
  });
});
