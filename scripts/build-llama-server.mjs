#!/usr/bin/env node
// Builds llama-server from the llama.cpp source bundled in node-llama-cpp
// (node_modules/node-llama-cpp/llama/gitRelease.bundle), with no network access, into a cache
// directory outside the repository:
//
//   ${SECNEURON_CACHE:-~/.cache/secneuron}/llama-server-<tag>/llama-server
//
// where <tag> comes from node_modules/node-llama-cpp/llama/llama.cpp.info.json. Idempotent: when
// the binary exists and `llama-server --version` runs, nothing is built. Prints the binary's path
// as the last line of stdout.
//
// Options: --force (rebuild), --jobs N (default: CPUs, capped at one per ~0.7 GB of free memory),
//          --out DIR (instead of the cache directory), --keep-build (keep the source and build
//          trees), --print-path (print where the binary goes and exit).
// Env: SECNEURON_CACHE, SECNEURON_BUILD_JOBS, CC, CXX.
import { spawnSync, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, copyFileSync, chmodSync, statSync } from "node:fs";
import { availableParallelism, freemem, homedir } from "node:os";
import { dirname, join, resolve } from "node:path";

const CMAKE_FLAGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DGGML_NATIVE=OFF",
  "-DLLAMA_BUILD_TOOLS=ON",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
  "-DLLAMA_USE_PREBUILT_UI=OFF", // else every build tries to download the web UI
  "-DLLAMA_OPENSSL=OFF",
  "-DBUILD_SHARED_LIBS=OFF", // one self-contained binary (libgomp/libstdc++/libc only)
];

function log(msg) {
  process.stderr.write(`build-llama-server: ${msg}\n`);
}

function fail(msg) {
  log(`error: ${msg}`);
  process.exit(1);
}

function which(cmd) {
  if (!cmd) return null;
  const r = spawnSync("sh", ["-c", `command -v ${JSON.stringify(cmd)}`], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

function parseArgs(argv) {
  const o = { force: false, jobs: undefined, out: undefined, keepBuild: false, printPath: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--force") o.force = true;
    else if (a === "--keep-build") o.keepBuild = true;
    else if (a === "--print-path") o.printPath = true;
    else if (a === "--jobs" || a === "-j") o.jobs = Number(argv[++i]);
    else if (a.startsWith("--jobs=")) o.jobs = Number(a.slice(7));
    else if (a === "--out") o.out = argv[++i];
    else if (a.startsWith("--out=")) o.out = a.slice(6);
    else if (a === "--help" || a === "-h") {
      process.stdout.write("usage: node scripts/build-llama-server.mjs [--force] [--jobs N] [--out DIR] [--keep-build] [--print-path]\n");
      process.exit(0);
    } else fail(`unknown argument ${a}`);
  }
  if (o.jobs !== undefined && (!Number.isInteger(o.jobs) || o.jobs < 1)) fail("--jobs needs a positive integer");
  if (o.out !== undefined && !o.out) fail("--out needs a directory");
  return o;
}

/** node-llama-cpp's package root (its package.json is not exported, so resolve its entry point). */
function nodeLlamaCppRoot() {
  const require = createRequire(import.meta.url);
  let entry;
  try {
    entry = require.resolve("node-llama-cpp");
  } catch {
    fail("node-llama-cpp is not installed (run npm install)");
  }
  let dir = dirname(entry);
  while (dir !== dirname(dir)) {
    if (existsSync(join(dir, "llama", "llama.cpp.info.json"))) return dir;
    dir = dirname(dir);
  }
  fail(`cannot find node-llama-cpp's llama/ directory above ${entry}`);
}

function runsVersion(binary) {
  if (!existsSync(binary)) return null;
  const r = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) return null;
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  return text.split("\n").find((l) => l.startsWith("version")) ?? (text.trim().split("\n")[0] || "ok");
}

/** Runs a command, its output on stderr (stdout carries only the path); exits the script on failure. */
function step(label, cmd, args, opts = {}) {
  log(`${label}: ${cmd} ${args.join(" ")}`);
  const t0 = Date.now();
  return new Promise((res) => {
    const p = spawn(cmd, args, { stdio: ["ignore", process.stderr, process.stderr], ...opts });
    p.on("error", (e) => fail(`${label} could not start ${cmd}: ${e.message}`));
    p.on("exit", (code, signal) => {
      if (code === 0) {
        log(`${label}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        res();
      } else fail(`${label} failed (${signal ? `signal ${signal}` : `exit code ${code}`}); see the output above`);
    });
  });
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const root = nodeLlamaCppRoot();
  const info = JSON.parse(readFileSync(join(root, "llama", "llama.cpp.info.json"), "utf8"));
  const tag = String(info.tag ?? "").replace(/[^A-Za-z0-9._-]/g, "_");
  if (!tag) fail("llama.cpp.info.json has no tag");
  const bundle = join(root, "llama", "gitRelease.bundle");
  const cacheRoot = process.env.SECNEURON_CACHE || join(homedir(), ".cache", "secneuron");
  const outDir = resolve(o.out ?? join(cacheRoot, `llama-server-${tag}`));
  const binary = join(outDir, process.platform === "win32" ? "llama-server.exe" : "llama-server");

  if (o.printPath) {
    process.stdout.write(`${binary}\n`);
    return;
  }

  if (!o.force) {
    const v = runsVersion(binary);
    if (v) {
      log(`already built (${v.trim()}); use --force to rebuild`);
      process.stdout.write(`${binary}\n`);
      return;
    }
    if (existsSync(binary)) log(`${binary} exists but does not run --version: rebuilding`);
  }

  // Tools: git (to clone the bundle), cmake, a C and a C++ compiler, and make or ninja.
  const missing = [];
  if (!which("git")) missing.push("git");
  if (!which("cmake")) missing.push("cmake");
  const cc = process.env.CC || ["cc", "gcc", "clang"].find((c) => which(c));
  const cxx = process.env.CXX || ["c++", "g++", "clang++"].find((c) => which(c));
  if (!cc || !which(cc)) missing.push("a C compiler (cc/gcc/clang)");
  if (!cxx || !which(cxx)) missing.push("a C++ compiler (c++/g++/clang++)");
  const ninja = which("ninja");
  if (!ninja && !which("make")) missing.push("make or ninja");
  if (missing.length) {
    fail(`missing ${missing.join(", ")}. Install them (e.g. apt-get install git cmake g++ make) and run npm run build:llama-server again.`);
  }
  if (!existsSync(bundle)) fail(`${bundle} is missing: reinstall node-llama-cpp`);

  let jobs = o.jobs ?? (Number(process.env.SECNEURON_BUILD_JOBS) || 0);
  if (!jobs) jobs = Math.max(1, Math.min(availableParallelism(), Math.floor(freemem() / (700 * 1024 * 1024))));

  const work = join(outDir, "work");
  const src = join(work, "src");
  const build = join(work, "build");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const t0 = Date.now();
  log(`llama.cpp ${tag} from ${bundle}`);
  log(`output ${binary} (${jobs} job${jobs === 1 ? "" : "s"}, ${ninja ? "ninja" : "make"})`);

  await step("[1/3] clone", "git", ["clone", "--quiet", bundle, src]);
  await step("[2/3] configure", "cmake", ["-S", src, "-B", build, ...(ninja ? ["-G", "Ninja"] : []), ...CMAKE_FLAGS], {
    env: { ...process.env, CC: cc, CXX: cxx },
  });
  await step("[3/3] compile", "cmake", ["--build", build, "--target", "llama-server", "-j", String(jobs)]);

  const built = [join(build, "bin", "llama-server"), join(build, "bin", "Release", "llama-server.exe"), join(build, "bin", "llama-server.exe")].find((p) => existsSync(p));
  if (!built) fail(`the build finished but no llama-server binary is under ${join(build, "bin")}`);
  const tmp = `${binary}.tmp`;
  copyFileSync(built, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, binary); // atomic: a half-written binary is never picked up
  if (!o.keepBuild) rmSync(work, { recursive: true, force: true });
  const v = runsVersion(binary);
  if (!v) fail(`${binary} was built but does not run --version`);
  log(`built ${v.trim()}, ${(statSync(binary).size / 1e6).toFixed(1)} MB, in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  process.stdout.write(`${binary}\n`);
}

main().catch((e) => fail(e instanceof Error ? e.message : String(e)));
