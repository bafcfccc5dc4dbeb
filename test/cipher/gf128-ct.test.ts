/**
 * The CUDA kernel's GHASH product (kernels/cuda/gf128_ct.h) is plain C too, so the machine
 * without a GPU checks its math: kernels/cuda/test_gf128.c, compiled here with the C compiler,
 * compares it with the C library's bit-serial sn_gf128_mul (edge values and random pairs) and
 * its 32-bit carry-less product with a bit-by-bit one.
 */
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { scratchDir } from "../helpers/tmp.js";

const root = resolve(import.meta.dirname, "..", "..");
const cc = ["cc", "gcc", "clang"].find((c) => spawnSync(c, ["--version"]).status === 0);

describe("CUDA GHASH product on the host", () => {
  const tmp = scratchDir("secneuron-gf128-");
  afterAll(() => tmp.cleanup());

  it("equals the C library's GF(2^128) product", () => {
    // The C library needs a compiler too: without one there is no native backend to compare with.
    expect(cc, "no C compiler (cc, gcc or clang) on PATH").toBeDefined();
    const exe = join(tmp.dir, "test_gf128");
    const build = spawnSync(cc!, ["-O2", "-std=c11", "-Wall", "-Werror", join(root, "kernels/cuda/test_gf128.c"), join(root, "kernels/c/aes_gcm_portable.c"), "-o", exe], { encoding: "utf8" });
    expect(build.status, build.stderr).toBe(0);
    const run = spawnSync(exe, ["100000"], { encoding: "utf8" });
    const out = JSON.parse(run.stdout.trim().split("\n").pop()!) as Record<string, number | string>;
    expect(out).toMatchObject({ gf128_ct: "pass", clmul32_bad: 0, edge_bad: 0, random_bad: 0, random_checked: 100000 });
    expect(out.edge_checked).toBeGreaterThan(2000);
    expect(run.status).toBe(0);
  });
});
