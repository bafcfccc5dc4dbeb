/**
 * The sidecar on the llama-server host: one llama-server per variant, OpenAI routes only. Real
 * when `npm run build:llama-server` has built the binary (.ci/run does); without it, the sidecar
 * must refuse to start with the build hint.
 */
import { existsSync } from "node:fs";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ORACLE_PROMPTS } from "../../examples/fixtures/oracle-model.js";
import { defaultLlamaServerPath } from "../../plugin/hosts/llama-server/llama-server-host.js";
import { scratchDir } from "../helpers/tmp.js";
import { startSidecar, type Fixture } from "./helpers.js";
import { rawRequest } from "./raw-http.js";

const HAVE_BINARY = existsSync(defaultLlamaServerPath());
const LETTERS = ORACLE_PROMPTS.find((p) => p.prompt === "abc")!;
const DIGITS = ORACLE_PROMPTS.find((p) => p.prompt === "123")!;

if (HAVE_BINARY) {
  describe("sidecar on the llama-server host", () => {
    const scratch = scratchDir("secneuron-sidecar-ls-");
    let f: Fixture;
    beforeAll(async () => { f = await startSidecar(scratch.dir, { host: "llama-server", contextSize: 256 }); }, 120_000);
    afterAll(async () => { await f?.sidecar.close(); scratch.cleanup(); });
    const client = (who: string) => new OpenAI({ baseURL: `${f.sidecar.url}/v1`, apiKey: f.tokens[who]! });

    it("alice gets letters and not digits, through the real openai library", async () => {
      const a = await client("alice").completions.create({ model: "oracle", prompt: "abc", temperature: 0, max_tokens: 20 });
      expect(a.choices[0]!.text).toBe(LETTERS.completion);
      expect(a.model).toBe("oracle");
      const d = await client("alice").chat.completions.create({ model: "oracle", messages: [{ role: "user", content: "123" }], temperature: 0, max_tokens: 20 });
      expect(d.choices[0]!.message.content).toBe(DIGITS.brokenCompletion);
    });

    it("streams with the caller's model name in every frame", async () => {
      let text = "";
      for await (const c of await client("bob").chat.completions.create({ model: "oracle", messages: [{ role: "user", content: "123" }], temperature: 0, max_tokens: 20, stream: true })) {
        expect(c.model).toBe("oracle");
        text += c.choices[0]?.delta?.content ?? "";
      }
      expect(text).toBe(DIGITS.completion);
    });

    it("Ollama routes get 501 on this host", async () => {
      const r = await rawRequest(f.sidecar.url, "POST", "/api/generate", [["authorization", `Bearer ${f.tokens.alice}`], ["content-type", "application/json"]], JSON.stringify({ model: "oracle", prompt: "abc", stream: false }));
      expect(r.status).toBe(501);
      expect(JSON.parse(r.body).error).toMatch(/llama-server/);
    });
  });
} else {
  describe("sidecar on the llama-server host without the binary", () => {
    it("refuses to start, with the build hint", async () => {
      const scratch = scratchDir("secneuron-sidecar-ls-");
      try {
        await expect(startSidecar(scratch.dir, { host: "llama-server" })).rejects.toThrow(/build:llama-server/);
      } finally {
        scratch.cleanup();
      }
    });
  });
}
