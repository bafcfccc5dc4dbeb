import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfigFile, serveOptions } from "../../plugin/cli/serve.js";
import { main } from "../../plugin/cli/main.js";
import type { CliIo } from "../../plugin/cli/args.js";
import { scratchDir } from "../helpers/tmp.js";

const s = scratchDir("secneuron-serve-cli-");
afterAll(() => s.cleanup());
const io = (): CliIo & { stdout: string; stderr: string } => {
  const x = { stdout: "", stderr: "", isTTY: false, out(t: string) { x.stdout += t; }, err(t: string) { x.stderr += t; } };
  return x;
};

describe("secneuron serve options", () => {
  it("flags override the YAML config, which overrides defaults", () => {
    const cfg = join(s.dir, "secneuron.yaml");
    writeFileSync(cfg, "listen: 127.0.0.1:9999\nmodels: /m\nthreads: 2\nvariant-budget: 512M\nallow-disk: true\n");
    const o = serveOptions({ config: cfg, models: "/flag-models" });
    expect(o).toMatchObject({ listen: "127.0.0.1:9999", modelsDir: "/flag-models", manifestsDir: "./manifests", threads: 2, variantBudgetBytes: 512 * 2 ** 20, allowDisk: true, host: "embedded" });
  });

  it("rejects unknown keys, bad values and unknown hosts precisely", () => {
    const cfg = join(s.dir, "bad.yaml");
    writeFileSync(cfg, "listen: 127.0.0.1:1\nmodles: /m\n");
    expect(() => loadConfigFile(cfg)).toThrow(/unknown key 'modles'/);
    writeFileSync(cfg, "- a\n- b\n");
    expect(() => loadConfigFile(cfg)).toThrow(/mapping/);
    writeFileSync(cfg, "listen: [\n");
    expect(() => loadConfigFile(cfg)).toThrow(/not valid YAML/);
    expect(() => serveOptions({ threads: "0" })).toThrow(/positive integer/);
    expect(() => serveOptions({ "variant-budget": "lots" })).toThrow(/size/);
    expect(() => serveOptions({ host: "vllm" })).toThrow(/embedded, ollama or llama-server/);
    expect(serveOptions({ host: "ollama", upstream: "http://127.0.0.1:11434" })).toMatchObject({ host: "ollama", upstream: "http://127.0.0.1:11434" });
  });

  it("fails cleanly when the authority or models are missing", async () => {
    const x = io();
    const code = await main(["serve", "--models", join(s.dir, "nope"), "--manifests", s.dir, "--authority", join(s.dir, "no-authority"), "--listen", "127.0.0.1:0"], x);
    expect(code).toBe(1);
    expect(x.stderr).toMatch(/AUTHORITY_NOT_FOUND|authority/i);
  });
});
