/**
 * The engine adapter's process boundary: llama.cpp aborting, a killed or stuck child, and
 * invalid models never take the test process down; each becomes a typed error.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ORACLE_MAX_TOKENS, encodeOracle } from "../../examples/fixtures/build-fixtures.js";
import { EngineError, GgufFormatError } from "../../plugin/errors.js";
import { EngineProcess, completeInChild, resolveWorkerPath } from "../../plugin/edges/engine/index.js";
import { writeGgufFile } from "../../plugin/edges/gguf-file.js";
import { oracleFixtures, scratchDir } from "./helpers.js";
import { rejection } from "../helpers/rejection.js";

const scratch = scratchDir("engine-process");
let q4: string;
let f32: string;
/** A model that our validator rejects and llama.cpp aborts on (GGML_ASSERT: head count 0). */
let aborting: string;

beforeAll(async () => {
  const files = await oracleFixtures();
  q4 = files.q4_0;
  f32 = files.f32;
  const { metadata, tensors } = encodeOracle("q4_0");
  metadata.delete("llama.attention.head_count");
  aborting = join(scratch.dir, "no-head-count.gguf");
  await writeGgufFile(aborting, metadata, tensors);
});
afterAll(() => scratch.cleanup());


describe("worker path", () => {
  it("maps the .ts source to dist/ and dist/ to the sibling worker.js", () => {
    const root = join("/", "repo");
    const fromTs = resolveWorkerPath(pathToFileURL(join(root, "plugin", "edges", "engine", "engine-process.ts")).href);
    expect(fromTs).toBe(join(root, "dist", "plugin", "edges", "engine", "worker.js"));
    const fromJs = resolveWorkerPath(pathToFileURL(join(root, "dist", "plugin", "edges", "engine", "engine-process.js")).href);
    expect(fromJs).toBe(join(root, "dist", "plugin", "edges", "engine", "worker.js"));
    expect(existsSync(resolveWorkerPath())).toBe(true);
  });

  it("a missing worker is an EngineError", async () => {
    const e = await rejection(EngineProcess.start({ workerPath: join(scratch.dir, "nope.js") }));
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe("ENGINE_WORKER_MISSING");
  });
});

describe("completeInChild", () => {
  it("answers all prompts from one child, same output in every run", async () => {
    const opts = { modelPath: q4, prompts: ["abc", "123"], maxTokens: ORACLE_MAX_TOKENS };
    const [a, b] = await Promise.all([completeInChild(opts), completeInChild({ ...opts, threads: 2 })]);
    expect(a).toEqual(["defghijklmnopqrstuvw", "45678901234567890123"]);
    expect(b).toEqual(a);
  });

  it("rejects an invalid model before starting llama.cpp", async () => {
    const e = await rejection(completeInChild({ modelPath: aborting, prompts: ["abc"], maxTokens: 4 }));
    expect(e).toBeInstanceOf(GgufFormatError);
    expect((e as GgufFormatError).code).toBe("LLAMA_MISSING_KEY");
    expect(e.message).toContain("llama.attention.head_count");
  });

  it("rejects a file that is not GGUF, and a missing file", async () => {
    const junk = join(scratch.dir, "junk.gguf");
    writeFileSync(junk, "this is not a model");
    for (const modelPath of [junk, join(scratch.dir, "missing.gguf")]) {
      const e = await rejection(completeInChild({ modelPath, prompts: ["abc"], maxTokens: 4 }));
      expect(e).toBeInstanceOf(GgufFormatError);
    }
  });
});

describe("EngineProcess failure handling", () => {
  it("llama.cpp aborting on a model (unsafeSkipValidation) is an EngineError with the signal", async () => {
    const engine = await EngineProcess.start();
    try {
      // Validation first: refused without reaching the child, which stays usable.
      expect(await rejection(engine.loadModel(aborting))).toBeInstanceOf(GgufFormatError);
      expect(engine.alive).toBe(true);
      const e = (await rejection(engine.loadModel(aborting, { unsafeSkipValidation: true }))) as EngineError;
      expect(e).toBeInstanceOf(EngineError);
      expect(e.code).toBe("ENGINE_CRASHED");
      expect(e.details.signal).toBe("SIGABRT");
      expect(String(e.details.stderr)).toContain("GGML_ASSERT");
      expect(engine.alive).toBe(false);
      expect(engine.exit).toEqual({ exitCode: null, signal: "SIGABRT" });
      const dead = (await rejection(engine.complete(["abc"], { maxTokens: 4 }))) as EngineError;
      expect(dead.code).toBe("ENGINE_DEAD");
    } finally {
      await engine.dispose();
    }
  });

  it("the fuzzer pattern: a fresh child after a crash works", async () => {
    const e = await rejection(completeInChild({ modelPath: aborting, prompts: ["abc"], maxTokens: 4, unsafeSkipValidation: true }));
    expect(e).toBeInstanceOf(EngineError);
    expect(await completeInChild({ modelPath: f32, prompts: ["xyz"], maxTokens: 5 })).toEqual(["abcde"]);
  });

  it("a child killed mid-request rejects the pending request", async () => {
    const engine = await EngineProcess.start();
    try {
      await engine.loadModel(q4);
      const pending = engine.complete(["abc"], { maxTokens: 200 });
      engine.kill("SIGKILL");
      const e = (await rejection(pending)) as EngineError;
      expect(e).toBeInstanceOf(EngineError);
      expect(e.code).toBe("ENGINE_CRASHED");
      expect(e.details.signal).toBe("SIGKILL");
    } finally {
      await engine.dispose();
    }
  });

  it("a stuck child times out and is killed", async () => {
    const engine = await EngineProcess.start();
    try {
      await engine.loadModel(q4);
      engine.kill("SIGSTOP");
      const e = (await rejection(engine.complete(["abc"], { maxTokens: 4, timeoutMs: 300 }))) as EngineError;
      expect(e.code).toBe("ENGINE_TIMEOUT");
      expect(await engine.waitForExit()).toEqual({ exitCode: null, signal: "SIGKILL" });
    } finally {
      await engine.dispose();
    }
  });

  it("a model llama.cpp refuses without aborting is an EngineError and the child survives", async () => {
    const { metadata, tensors } = encodeOracle("q4_0");
    metadata.delete("llama.embedding_length");
    const bad = join(scratch.dir, "no-embd.gguf");
    await writeGgufFile(bad, metadata, tensors);
    const engine = await EngineProcess.start();
    try {
      const e = (await rejection(engine.loadModel(bad, { unsafeSkipValidation: true }))) as EngineError;
      expect(e).toBeInstanceOf(EngineError);
      if (engine.alive) {
        expect(e.code).toBe("ENGINE_REQUEST_FAILED");
        await engine.loadModel(q4);
        expect(await engine.complete(["123"], { maxTokens: 3 })).toEqual(["456"]);
      } else {
        expect(e.code).toBe("ENGINE_CRASHED");
      }
    } finally {
      await engine.dispose();
    }
  });

  it("rejects bad options", async () => {
    expect(await rejection(EngineProcess.start({ threads: 0 }))).toBeInstanceOf(EngineError);
  });
});
