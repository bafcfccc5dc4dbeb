#!/usr/bin/env node
// Builds the row-cipher kernels into kernels/build/ (gitignored):
//   libsecneuron_c.so     always, when a C compiler exists (CC, cc, gcc or clang)
//   libsecneuron_cuda.so  only when nvcc is on PATH (static cudart: loads without a driver)
// Never fails the install: on any problem it prints a note and exits 0, and secneuron then
// uses the next backend (C, then node:crypto). Env: CC, NVCC, SECNEURON_CUDA_ARCHS
// ("75,80,90"), SECNEURON_SKIP_KERNELS=1, SECNEURON_SKIP_CUDA=1.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "build");
const ext = process.platform === "darwin" ? "dylib" : process.platform === "win32" ? "dll" : "so";

function note(msg) {
  console.log(`kernels: ${msg}`);
}

function which(cmd) {
  if (!cmd) return null;
  const r = spawnSync("sh", ["-c", `command -v ${JSON.stringify(cmd)}`], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: here });
  if (r.error) return { ok: false, log: String(r.error) };
  return { ok: r.status === 0, log: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** Compiles to a temp name, then renames, so a half-written library is never picked up. */
function build(label, cmd, args, target) {
  const tmp = `${target}.tmp`;
  rmSync(tmp, { force: true });
  const t0 = Date.now();
  const r = run(cmd, [...args, "-o", tmp]);
  if (!r.ok) {
    rmSync(tmp, { force: true });
    note(`${label} build failed; falling back to the next backend.\n${r.log.slice(0, 4000)}`);
    return false;
  }
  renameSync(tmp, target);
  note(`${label} -> ${target} (${Date.now() - t0} ms)`);
  return true;
}

function main() {
  if (process.env.SECNEURON_SKIP_KERNELS === "1") return note("SECNEURON_SKIP_KERNELS=1, nothing built");
  if (process.platform === "win32") return note("native kernels are built on Linux/macOS only; using node:crypto");
  mkdirSync(out, { recursive: true });

  const cc = [process.env.CC, "cc", "gcc", "clang"].map(which).find(Boolean);
  if (!cc) {
    note("no C compiler found (set CC); the node:crypto backend will be used");
  } else {
    const csrc = ["c/secneuron_c.c", "c/aes_gcm_portable.c", "c/aes_gcm_x86.c"];
    build(
      "C library",
      cc,
      ["-O3", "-std=c11", "-D_GNU_SOURCE", "-fPIC", "-shared", "-fvisibility=hidden", "-pthread",
        "-Wall", "-Wextra", ...csrc, "-lpthread"],
      join(out, `libsecneuron_c.${ext}`),
    );
  }

  const nvcc = process.env.SECNEURON_SKIP_CUDA === "1" ? null : which(process.env.NVCC || "nvcc");
  if (!nvcc) return note("nvcc not found: CUDA library not built");
  const archs = (process.env.SECNEURON_CUDA_ARCHS || "75,80,90").split(",").map((s) => s.trim()).filter(Boolean);
  const gencode = archs.flatMap((a) => ["-gencode", `arch=compute_${a},code=sm_${a}`]);
  // Newest arch also as PTX so newer GPUs can JIT it.
  const last = archs[archs.length - 1];
  if (last) gencode.push("-gencode", `arch=compute_${last},code=compute_${last}`);
  build(
    "CUDA library",
    nvcc,
    ["-O3", "-shared", "-Xcompiler", "-fPIC,-fvisibility=hidden", "-cudart", "static", ...gencode,
      "cuda/secneuron_cuda.cu", "c/aes_gcm_portable.c"],
    join(out, `libsecneuron_cuda.${ext}`),
  );
}

try {
  main();
} catch (err) {
  note(`unexpected error, kernels skipped: ${err instanceof Error ? err.message : String(err)}`);
}
process.exit(0);
