/** Backend selection: order, env override, clean failures, CUDA without a driver. */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BackendError } from "../../plugin/errors.js";
import { describeBackends, kernelLibraryPath, loadBackend, loadRowCipherBackend } from "../../ffi/load.js";
import { bindLibrary, SnStatus } from "../../ffi/abi.js";
import { probeCuda } from "../../ffi/backends/cuda.js";

describe("backend loader", () => {
  const status = describeBackends();
  const c = status.find((s) => s.name === "c")!;
  const cuda = status.find((s) => s.name === "cuda")!;

  it("lists c, cuda, js in preference order with reasons; js is always available", () => {
    expect(status.map((s) => s.name)).toEqual(["c", "cuda", "js"]);
    expect(status[2]!.available).toBe(true);
    for (const s of status) expect(s.reason.length).toBeGreaterThan(0);
    console.log(JSON.stringify(status));
  });

  it("auto picks the first available backend", () => {
    const be = loadRowCipherBackend({ env: {} });
    const want = c.available ? "c" : cuda.available ? "cuda" : "js";
    expect(be.name).toBe(want);
  });

  it("SECNEURON_BACKEND forces a backend; an unknown value is a typed error", () => {
    expect(loadRowCipherBackend({ env: { SECNEURON_BACKEND: "js" } }).name).toBe("js");
    if (c.available) expect(loadRowCipherBackend({ env: { SECNEURON_BACKEND: "C" } }).name).toBe("c");
    expect(() => loadRowCipherBackend({ env: { SECNEURON_BACKEND: "gpu" } })).toThrow(BackendError);
    expect(() => loadRowCipherBackend({ env: { SECNEURON_THREADS: "x", SECNEURON_BACKEND: c.available ? "c" : "js" } })).toThrow(
      c.available ? BackendError : Error,
    );
  });

  it("a forced backend that is missing is a BackendError, not a fallback", () => {
    const dir = "/nonexistent-secneuron-kernels";
    expect(() => loadRowCipherBackend({ prefer: "c", kernelsDir: dir })).toThrow(/c backend unavailable/);
    expect(() => loadBackend("cuda", { kernelsDir: dir })).toThrow(BackendError);
    expect(loadRowCipherBackend({ kernelsDir: dir, env: {} }).name).toBe("js");
  });

  // Which CUDA test runs depends on the machine: without nvcc there is no library, without a GPU
  // it must report "no device", with one it is picked when the C library is missing.
  if (cuda.path === undefined) {
    it("without a CUDA library, the cuda backend is reported missing and auto skips it", () => {
      expect(() => loadBackend("cuda")).toThrow(BackendError);
      expect(loadRowCipherBackend({ env: {} }).name).toBe(c.available ? "c" : "js");
    });
  } else if (cuda.available) {
    it("with a GPU, auto still picks C first, and CUDA when the C library is missing", () => {
      expect(loadRowCipherBackend({ env: {} }).name).toBe(c.available ? "c" : "cuda");
      expect(loadRowCipherBackend({ prefer: "cuda" }).name).toBe("cuda");
    });
  } else it(
    "the CUDA library loads without a driver and reports no device cleanly (error 35), then auto falls back",
    () => {
      expect(cuda.status).toBe("SN_ERR_NO_DEVICE");
      expect(cuda.reason).toMatch(/cuda/i);
      const lib = bindLibrary(cuda.path!);
      const p = probeCuda(lib);
      expect(p.available).toBe(false);
      expect(p.status).toBe(SnStatus.ERR_NO_DEVICE);
      console.log(`cuda probe: ${p.detail}`);
      expect(() => loadBackend("cuda")).toThrow(expect.objectContaining({ code: "E_BACKEND_NO_DEVICE" }));
      // Entry points fail cleanly too.
      const st = lib.rowsEncrypt(new Uint8Array(32), new Uint8Array(64), new Uint32Array([0, 0, 64, 0, 0, 0]), 1, new Uint8Array(16), 0);
      expect(st).toBe(SnStatus.ERR_NO_DEVICE);
      expect(loadRowCipherBackend({ env: {} }).name).toBe(c.available ? "c" : "js");
    },
  );

  it("library paths resolve inside kernels/build when built", () => {
    const p = kernelLibraryPath("c");
    if (p) expect(existsSync(p)).toBe(true);
  });
});
