/**
 * Unmodified ollama CLI users: OLLAMA_AUTH=1 signs "<METHOD>,<path>?ts=<unix>" with
 * ~/.ollama/id_ed25519. A key is enrolled once with the manifest's token; signed requests then act
 * as that manifest, and stop working when it is removed. Signatures here are made exactly as the
 * ollama client makes them (no ollama binary exists on this machine).
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ORACLE_PROMPTS } from "../../examples/fixtures/oracle-model.js";
import { ollamaChallenge, ollamaPublicKeyText } from "../../plugin/proxy/auth.js";
import { scratchDir } from "../helpers/tmp.js";
import { startSidecar, type Fixture } from "./helpers.js";
import { rawRequest } from "./raw-http.js";

const scratch = scratchDir("secneuron-ollama-auth-");
let f: Fixture;
beforeAll(async () => { f = await startSidecar(scratch.dir); }, 120_000);
afterAll(async () => { await f?.sidecar.close(); scratch.cleanup(); });

const LETTERS = ORACLE_PROMPTS.find((p) => p.prompt === "abc")!;
const DIGITS = ORACLE_PROMPTS.find((p) => p.prompt === "123")!;
const secret = ed25519.utils.randomSecretKey();
const pubText = ollamaPublicKeyText(ed25519.getPublicKey(secret));

function signed(method: string, path: string, body: string, key = secret, ts = Math.floor(Date.now() / 1000)) {
  const sig = ed25519.sign(new TextEncoder().encode(ollamaChallenge(method, path, String(ts))), key);
  const auth = `${ollamaPublicKeyText(ed25519.getPublicKey(key))}:${Buffer.from(sig).toString("base64")}`;
  return rawRequest(f.sidecar.url, method, `${path}?ts=${ts}`, [["authorization", auth], ["content-type", "application/json"]], body);
}
const gen = (prompt: string) => JSON.stringify({ model: "oracle", prompt, stream: false, options: { temperature: 0, num_predict: 20 } });

describe("OLLAMA_AUTH request signatures", () => {
  it("an unenrolled key is refused", async () => {
    expect((await signed("POST", "/api/generate", gen("abc"))).status).toBe(401);
  });

  it("enrolling needs the token; then signed requests act as the manifest", async () => {
    const noToken = await rawRequest(f.sidecar.url, "POST", "/secneuron/v1/enroll", [["content-type", "application/json"]], JSON.stringify({ publicKey: `ssh-ed25519 ${pubText} me@host` }));
    expect(noToken.status).toBe(401);
    const bad = await rawRequest(f.sidecar.url, "POST", "/secneuron/v1/enroll", [["authorization", `Bearer ${f.tokens.alice}`], ["content-type", "application/json"]], JSON.stringify({ publicKey: "ssh-rsa AAAAB3Nza" }));
    expect(bad.status).toBe(400);
    const ok = await rawRequest(f.sidecar.url, "POST", "/secneuron/v1/enroll", [["authorization", `Bearer ${f.tokens.alice}`], ["content-type", "application/json"]], JSON.stringify({ publicKey: `ssh-ed25519 ${pubText} me@host` }));
    expect(ok.status, ok.body).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ enrolled: true, subject: "alice" });
    const a = await signed("POST", "/api/generate", gen("abc"));
    expect(a.status, a.body).toBe(200);
    expect(JSON.parse(a.body).response).toBe(LETTERS.completion);
    const d = await signed("POST", "/api/generate", gen("123"));
    expect(JSON.parse(d.body).response).toBe(DIGITS.brokenCompletion);
    const tags = await signed("GET", "/api/tags", "");
    expect(JSON.parse(tags.body).models.map((m: { name: string }) => m.name)).toEqual(["oracle:latest"]);
  });

  it("stale, forged and wrong-path signatures are refused", async () => {
    expect((await signed("POST", "/api/generate", gen("abc"), secret, Math.floor(Date.now() / 1000) - 3600)).status).toBe(401);
    const other = ed25519.utils.randomSecretKey();
    expect((await signed("POST", "/api/generate", gen("abc"), other)).status).toBe(401);
    // The same signature twice in one second is what a client sends for two identical requests:
    // accepted (no replay cache: see app.ts), within the freshness window only.
    const ts = Math.floor(Date.now() / 1000);
    const sig = ed25519.sign(new TextEncoder().encode(ollamaChallenge("POST", "/api/generate", String(ts))), secret);
    const auth = `${pubText}:${Buffer.from(sig).toString("base64")}`;
    for (let i = 0; i < 2; i++) {
      const r = await rawRequest(f.sidecar.url, "POST", `/api/generate?ts=${ts}`, [["authorization", auth], ["content-type", "application/json"]], gen("abc"));
      expect(r.status).toBe(200);
    }
    // A signature for /api/tags used on /api/generate.
    const s2 = ed25519.sign(new TextEncoder().encode(ollamaChallenge("GET", "/api/tags", String(ts + 1))), secret);
    const wrong = await rawRequest(f.sidecar.url, "POST", `/api/generate?ts=${ts + 1}`, [["authorization", `${pubText}:${Buffer.from(s2).toString("base64")}`], ["content-type", "application/json"]], gen("abc"));
    expect(wrong.status).toBe(401);
  });

  it("removing the manifest ends the binding", async () => {
    rmSync(join(f.manifestsDir, "alice.manifest.json"));
    const end = Date.now() + 15_000;
    let status = 200;
    while (Date.now() < end && status === 200) {
      status = (await signed("POST", "/api/generate", gen("abc"))).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(401);
  });
});
