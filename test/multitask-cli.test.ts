/**
 * The multitask scripts' flags are strict: an unknown flag, a bad value or --help never falls
 * through to a run with defaults (which for export.js means rewriting the committed models).
 * Each runs from a scratch working directory, so even a regression could not touch the repo.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { scratchDir } from "./helpers/tmp.js";

const dist = resolve(import.meta.dirname, "..", "dist", "examples", "multitask");
const model = resolve(import.meta.dirname, "..", "examples", "multitask", "models", "multitask-f16.gguf");
const ablation = resolve(import.meta.dirname, "..", "examples", "multitask", "profiles", "ablation-f16.json");
const tmp = scratchDir("secneuron-mtcli-");
afterAll(() => tmp.cleanup());
const run = (script: string, ...args: string[]) => spawnSync(process.execPath, [join(dist, script), ...args], { cwd: tmp.dir, encoding: "utf8", timeout: 60_000 });

describe("multitask script flags", () => {
  for (const script of ["corpus.js", "eval-plain.js", "export.js", "report.js", "probe-memory.js", "separation-units.js", "quantize.js"]) {
    it(`${script}: an unknown flag is a usage error (exit 2); --help prints the usage (exit 0)`, () => {
      const bad = run(script, "--bogus", "1");
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/bogus/);
      expect(bad.stderr).toContain(`Usage: node dist/examples/multitask/${script}`);
      const help = run(script, "--help");
      expect(help.status).toBe(0);
      expect(help.stdout).toContain(`Usage: node dist/examples/multitask/${script}`);
      expect(readdirSync(tmp.dir)).toEqual([]);
    });
  }

  it("bad values are named: corpus --seed, eval-plain --split and --limit, report --heldout-seed and --only, a flag without its value", () => {
    const cases: Array<[string, string[], RegExp]> = [
      ["corpus.js", ["--seed", "one"], /--seed: expected a non-negative integer, found "one"/],
      ["corpus.js", ["--lines-per-task", "1.5"], /--lines-per-task: expected a non-negative integer, found "1.5"/],
      ["eval-plain.js", ["--split", "train"], /--split: expected heldout or calib, found "train"/],
      ["eval-plain.js", ["--limit", "0"], /--limit: expected a positive integer, found "0"/],
      ["export.js", ["--weights"], /--weights/],
      ["export.js", ["--name", "../models/x"], /--name: expected a file name stem/],
      ["separation-units.js", ["--budget", "2"], /--budget: expected a fraction in \(0, 1\], found "2"/],
      ["separation-units.js", ["--profile", "nope.json"], /--profile nope\.json: ENOENT/],
      ["separation-units.js", ["--profile", ablation, "--tasks", "arith,chess"], /--tasks chess: task 'chess' is not in the profile/],
      ["probe-memory.js", ["--limit", "0"], /--limit: expected a positive integer, found "0"/],
      ["probe-memory.js", ["--model", model, "--components", "ffn:0,v:1:999"], /--components: no row 999 in blk\.1\.attn_v\.weight/],
      ["probe-memory.js", ["--model", model, "--components", "ffn:2"], /--components: 'ffn:2': no layer 2 \(the model has 2\)/],
      ["quantize.js", ["--in", "nope.gguf"], /--in nope\.gguf: no such file/],
      ["quantize.js", ["--in", model, "--out", model], /--out .*: must differ from --in/],
      ["report.js", ["--heldout-seed", "x"], /--heldout-seed: expected a non-negative integer, found "x"/],
      ["report.js", ["--only", "code-f16,nope"], /--only: no experiment named nope; the experiments are acceptance-f16, pii-abuse-f16, /],
    ];
    for (const [script, args, msg] of cases) {
      const r = run(script, ...args);
      expect(r.status, `${script} ${args.join(" ")}`).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    expect(readdirSync(tmp.dir)).toEqual([]);
  });

  it("separation-units.js writes each task's selection at the budget: what secneuron eval's ablation method seals", () => {
    const r = run("separation-units.js", "--profile", ablation, "--budget", "0.05");
    expect(r.status, r.stderr).toBe(0);
    const units = JSON.parse(r.stdout) as Record<string, string>;
    expect(Object.keys(units)).toEqual(["arith", "code", "trans", "pii", "abuse"]);
    const seen = new Set<string>();
    for (const [task, c] of Object.entries(units)) {
      const parts = c.split("+");
      expect(parts, task).toHaveLength(Math.round(0.05 * 2 * 768));
      for (const p of parts) {
        expect(p).toMatch(/^ffn:[01]:(\d+)-\1$/);
        expect(seen.has(p), `${p} in two tasks`).toBe(false);
        seen.add(p);
      }
    }
    expect(readdirSync(tmp.dir)).toEqual([]);
  });

  it("quantize.js checks its input with our GGUF reader before llama.cpp sees it, and leaves the destination alone when it fails", () => {
    writeFileSync(join(tmp.dir, "junk.gguf"), Buffer.alloc(4096, 7));
    writeFileSync(join(tmp.dir, "keep.gguf"), "last good model");
    const r = run("quantize.js", "--in", "junk.gguf", "--out", "keep.gguf");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/quantize: magic at byte 0: expected "GGUF"/);
    expect(readFileSync(join(tmp.dir, "keep.gguf"), "utf8")).toBe("last good model");
    expect(readdirSync(tmp.dir).sort()).toEqual(["junk.gguf", "keep.gguf"]);
    rmSync(join(tmp.dir, "junk.gguf"));
    rmSync(join(tmp.dir, "keep.gguf"));
  });

  it("quantize.js makes llama.cpp's Q4_K_M of the committed F16 model: byte-identical to the committed K-quant", () => {
    const r = run("quantize.js", "--in", model, "--out", "q.gguf");
    expect(r.status, r.stderr).toBe(0);
    const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");
    expect(sha(join(tmp.dir, "q.gguf"))).toBe(sha(model.replace("-f16.gguf", "-q4_k_m.gguf")));
    expect(readdirSync(tmp.dir)).toEqual(["q.gguf"]);
    rmSync(join(tmp.dir, "q.gguf"));
  });
});
