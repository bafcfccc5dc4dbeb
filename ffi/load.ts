/**
 * Picks the row-cipher backend: C, then CUDA, then node:crypto (JS). C comes first because the
 * rows live in host memory (the model file the server maps): the CUDA library copies them to the
 * GPU and back per batch, and on an H100 machine that measured 3.4 GB/s against 42 GB/s for the C
 * library on its 16 cores (docs/backends.md). Each native library is
 * first probed in a child process (a library that crashes at load takes only the child down),
 * then bound once per process. Override with SECNEURON_BACKEND=cuda|c|js (or `prefer`); a
 * forced backend that is unavailable is a BackendError, never a silent fallback.
 * Do not load the kernels from worker_threads: koffi libraries belong to the main thread.
 */
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { RowCipherBackend, RowCipherBackendName } from "../plugin/core/ports.js";
import { BackendError } from "../plugin/errors.js";
import { bindLibrary, SN_ABI_VERSION, SnStatus, statusName, type SnLibrary } from "./abi.js";
import { createCBackend } from "./backends/c.js";
import { createCudaBackend } from "./backends/cuda.js";
import { createJsBackend } from "./backends/js.js";

export type BackendChoice = "auto" | RowCipherBackendName;
export const BACKEND_ENV = "SECNEURON_BACKEND";
export const KERNELS_DIR_ENV = "SECNEURON_KERNELS_DIR";
export const THREADS_ENV = "SECNEURON_THREADS";

export interface BackendLoadOptions {
  /** Default: env SECNEURON_BACKEND, else "auto". */
  readonly prefer?: BackendChoice;
  /** C worker threads; default env SECNEURON_THREADS, else 0 = all online CPUs. */
  readonly threads?: number;
  /** Folder with libsecneuron_{c,cuda}.so; default env SECNEURON_KERNELS_DIR, else kernels/build. */
  readonly kernelsDir?: string;
  /** Environment to read (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Probe native libraries in a child process first (default true). */
  readonly probeInChild?: boolean;
}

export interface BackendStatus {
  readonly name: RowCipherBackendName;
  readonly available: boolean;
  /** Why it is (not) available: probe detail, missing file, CUDA status. */
  readonly reason: string;
  readonly path?: string;
  readonly status?: string;
}

const LIB_EXT = process.platform === "darwin" ? "dylib" : process.platform === "win32" ? "dll" : "so";
const CHOICES: readonly BackendChoice[] = ["auto", "cuda", "c", "js"];

function defaultKernelDirs(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  // ffi/load.ts (sources, vitest) and dist/ffi/load.js (compiled) both reach the repo root.
  return [resolve(here, "..", "kernels", "build"), resolve(here, "..", "..", "kernels", "build")];
}

/** Path of libsecneuron_<kind> or null when it was not built. */
export function kernelLibraryPath(kind: "c" | "cuda", options: BackendLoadOptions = {}): string | null {
  const env = options.env ?? process.env;
  const dirs = options.kernelsDir ? [options.kernelsDir] : env[KERNELS_DIR_ENV] ? [env[KERNELS_DIR_ENV]!] : defaultKernelDirs();
  for (const dir of dirs) {
    const p = join(dir, `libsecneuron_${kind}.${LIB_EXT}`);
    if (existsSync(p)) return p;
  }
  return null;
}

interface ProbeOutcome {
  readonly ok: boolean;
  readonly status?: number;
  readonly detail: string;
}

const probeCache = new Map<string, ProbeOutcome>();
const bound = new Map<string, SnLibrary>();

/** Loads the library in a child Node process and asks for its ABI version and probe status. */
export function probeLibraryInChild(path: string): ProbeOutcome {
  const st = statSync(path);
  const cacheKey = `${path}:${st.size}:${st.mtimeMs}`;
  const hit = probeCache.get(cacheKey);
  if (hit) return hit;
  const koffiPath = createRequire(import.meta.url).resolve("koffi");
  const script = `
    const koffi = require(${JSON.stringify(koffiPath)});
    const lib = koffi.load(${JSON.stringify(path)});
    const abi = lib.func("uint32_t sn_abi_version(void)")();
    const buf = Buffer.alloc(256);
    const status = lib.func("int sn_probe(_Out_ uint8_t *d, size_t n)")(buf, buf.length);
    const end = buf.indexOf(0);
    process.stdout.write(JSON.stringify({ abi, status, detail: buf.subarray(0, end < 0 ? 256 : end).toString() }));
  `;
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 30_000 });
  let out: ProbeOutcome;
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    out = { ok: false, detail: `probe child failed (${why}): ${(r.stderr ?? "").trim().split("\n").slice(-3).join(" | ")}` };
  } else {
    try {
      const j = JSON.parse(r.stdout) as { abi: number; status: number; detail: string };
      if (j.abi !== SN_ABI_VERSION) out = { ok: false, detail: `ABI ${j.abi}, expected ${SN_ABI_VERSION}` };
      else out = { ok: j.status === SnStatus.OK, status: j.status, detail: j.detail };
    } catch {
      out = { ok: false, detail: `probe child printed no JSON: ${r.stdout.slice(0, 200)}` };
    }
  }
  probeCache.set(cacheKey, out);
  return out;
}

/** Binds a library once per process (koffi handles are shared, never unloaded). */
function bindOnce(path: string): SnLibrary {
  let lib = bound.get(path);
  if (!lib) {
    lib = bindLibrary(path);
    bound.set(path, lib);
  }
  return lib;
}

function nativeStatus(kind: "c" | "cuda", options: BackendLoadOptions): BackendStatus {
  const path = kernelLibraryPath(kind, options);
  if (!path) {
    return {
      name: kind,
      available: false,
      reason: kind === "cuda" ? "libsecneuron_cuda not built (needs nvcc)" : "libsecneuron_c not built (needs a C compiler; run npm run build:kernels)",
    };
  }
  if (options.probeInChild !== false) {
    const p = probeLibraryInChild(path);
    const status = p.status === undefined ? undefined : statusName(p.status);
    return { name: kind, available: p.ok, reason: p.detail, path, ...(status ? { status } : {}) };
  }
  try {
    const p = bindOnce(path).probe();
    return { name: kind, available: p.status === SnStatus.OK, reason: p.detail, path, status: statusName(p.status) };
  } catch (err) {
    return { name: kind, available: false, reason: (err as Error).message, path };
  }
}

/** What each backend would do here, in preference order (c, cuda, js). */
export function describeBackends(options: BackendLoadOptions = {}): BackendStatus[] {
  return [
    nativeStatus("c", options),
    nativeStatus("cuda", options),
    { name: "js", available: true, reason: `node:crypto (OpenSSL ${process.versions.openssl})` },
  ];
}

function readChoice(options: BackendLoadOptions): BackendChoice {
  const raw = options.prefer ?? (options.env ?? process.env)[BACKEND_ENV] ?? "auto";
  const v = raw.trim().toLowerCase() as BackendChoice;
  if (!CHOICES.includes(v)) {
    throw new BackendError("E_BACKEND_CHOICE", `${BACKEND_ENV}: expected one of ${CHOICES.join("|")}, found "${raw}"`, {
      found: raw,
    });
  }
  return v;
}

function readThreads(options: BackendLoadOptions): number {
  if (options.threads !== undefined) return options.threads;
  const raw = (options.env ?? process.env)[THREADS_ENV];
  if (raw === undefined || raw === "") return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 256) {
    throw new BackendError("E_BACKEND_CHOICE", `${THREADS_ENV}: expected an integer in [0, 256], found "${raw}"`);
  }
  return n;
}

/** Creates one named backend; throws BackendError when it is not available here. */
export function loadBackend(name: RowCipherBackendName, options: BackendLoadOptions = {}): RowCipherBackend {
  if (name === "js") return createJsBackend();
  const st = nativeStatus(name, options);
  if (!st.available || !st.path) {
    throw new BackendError(
      name === "cuda" && st.status === "SN_ERR_NO_DEVICE" ? "E_BACKEND_NO_DEVICE" : "E_BACKEND_UNAVAILABLE",
      `${name} backend unavailable: ${st.reason}`,
      { backend: name, ...st },
    );
  }
  const lib = bindOnce(st.path);
  return name === "cuda" ? createCudaBackend(lib) : createCBackend(lib, { threads: readThreads(options) });
}

/** The backend to use: the forced one (prefer / SECNEURON_BACKEND), else the first available. */
export function loadRowCipherBackend(options: BackendLoadOptions = {}): RowCipherBackend {
  const choice = readChoice(options);
  if (choice !== "auto") return loadBackend(choice, options);
  for (const name of ["c", "cuda"] as const) {
    try {
      return loadBackend(name, options);
    } catch (err) {
      if (!(err instanceof BackendError)) throw err;
    }
  }
  return createJsBackend();
}
