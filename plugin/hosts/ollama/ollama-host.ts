/**
 * The "ollama" host: a real Ollama server serves the variants. Each variant is registered in the
 * Ollama store folder (the one the server's `OLLAMA_MODELS` names) without copying its weights:
 *
 *   blobs/sha256-<sha256 of the variant>  ->  symlink to the variant file on tmpfs
 *   blobs/sha256-<sha256 of the config>       small JSON config (Ollama ConfigV2 + our marker)
 *   manifests/registry.ollama.ai/library/secneuron-<model>/<tag>   docker v2 manifest (atomic)
 *
 * Ollama finds models by reading manifests on every request and opens the weights blob by path
 * (stat/open/mmap follow the symlink), so the plaintext stays on tmpfs. Symlink, never a hard
 * link: a hard link would keep a deleted variant's bytes alive inside the store and only works
 * when the store itself is on the same tmpfs; a symlink works across filesystems and dangles
 * (fails closed) once the variant is gone. See docs/hosts-ollama.md for settings and caveats.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, statSync, symlinkSync, unlinkSync, writeFileSync, linkSync, rmSync, type Stats } from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { EngineError, SecNeuronError } from "../../errors.js";
import { readGgufHeader } from "../../edges/gguf-file.js";
import { GgufValueType } from "../../core/gguf/constants.js";
import { describeModelFile } from "../embedded/embedded-host.js";
import type { HostAdapter, HostTarget } from "../host-adapter.js";
import {
  CONFIG_MEDIA_TYPE,
  DEFAULT_NAME_PREFIX,
  DigestCache,
  LLAMA_FTYPE_NAMES,
  MODEL_MEDIA_TYPE,
  blobPath,
  checkNamePrefix,
  defaultOllamaStoreDir,
  goArch,
  goOs,
  manifestJson,
  manifestPath,
  ollamaModelName,
  type ManifestLayer,
  type OllamaConfig,
  type OllamaName,
} from "./store.js";

export const DEFAULT_OLLAMA_UPSTREAM = "http://127.0.0.1:11434";
/** Where temporary files go, inside the store (same filesystem: rename/link are atomic), outside manifests/ and blobs/. */
export const STORE_TMP_DIR = ".secneuron-tmp";

export interface OllamaHostOptions {
  /** Base URL of the Ollama server (default http://127.0.0.1:11434; `localhost` is rewritten to 127.0.0.1). */
  readonly upstream?: string;
  /** The Ollama store folder (default `$OLLAMA_MODELS`, else `~/.ollama/models`). Must be the server's. */
  readonly storeDir?: string;
  /** Prefix of every registered model name (default "secneuron-"): keeps clear of the user's models. */
  readonly namePrefix?: string;
  /** Headers the proxy adds to requests for Ollama (e.g. an auth proxy's key in front of it). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Milliseconds healthy() waits for /api/version (default 2000). */
  readonly healthTimeoutMs?: number;
  /** On start(), remove manifests under our prefix left by an earlier run, and our blobs (default true). */
  readonly removeStale?: boolean;
  /** Warnings (default console.warn). */
  readonly warn?: (message: string) => void;
  /** Environment for the default store (tests). */
  readonly env?: NodeJS.ProcessEnv;
}

/** What one variant name is registered as. */
export interface OllamaRegistration {
  readonly name: string;
  readonly ollama: OllamaName;
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  readonly weights: ManifestLayer;
  readonly config: ManifestLayer;
  readonly manifestPath: string;
}

function normalizeUpstream(upstream: string): string {
  let u: URL;
  try {
    u = new URL(upstream);
  } catch {
    throw new EngineError("ENGINE_BAD_OPTION", `upstream ${JSON.stringify(upstream)} is not a URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new EngineError("ENGINE_BAD_OPTION", `upstream ${upstream} must be http(s)`);
  if (u.username || u.password || u.search || u.hash) throw new EngineError("ENGINE_BAD_OPTION", `upstream ${upstream} must be a plain base URL`);
  // Ollama bound to loopback checks the Host header; 127.0.0.1 is always accepted, and avoids ::1 vs 127.0.0.1.
  if (u.hostname === "localhost") u.hostname = "127.0.0.1";
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

function sha256Hex(b: Buffer | string): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Every manifest file under `<store>/manifests` (any depth: Ollama uses 4 levels, newer ones 5 for "kinds"). */
function listManifestFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory() && depth < 8) walk(p, depth + 1);
      else if (e.isFile()) out.push(p);
    }
  };
  walk(root, 0);
  return out;
}

function readManifest(path: string): { config?: ManifestLayer; layers?: ManifestLayer[] } | undefined {
  try {
    const m = JSON.parse(readFileSync(path, "utf8")) as { config?: ManifestLayer; layers?: ManifestLayer[] };
    return m && typeof m === "object" ? m : undefined;
  } catch {
    return undefined;
  }
}

export class OllamaHost implements HostAdapter {
  readonly kind = "ollama" as const;
  readonly upstream: string;
  readonly storeDir: string;
  readonly namePrefix: string;
  private readonly headers: Readonly<Record<string, string>> | undefined;
  private readonly healthTimeoutMs: number;
  private readonly removeStale: boolean;
  private readonly warn: (message: string) => void;
  private readonly regs = new Map<string, OllamaRegistration>();
  /** Ollama name -> variant name, to refuse two variant names that map to one Ollama name. */
  private readonly owners = new Map<string, string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly digests = new DigestCache();
  private started: Promise<void> | undefined;

  constructor(options: OllamaHostOptions = {}) {
    this.upstream = normalizeUpstream(options.upstream ?? DEFAULT_OLLAMA_UPSTREAM);
    this.storeDir = resolve(options.storeDir ?? defaultOllamaStoreDir(options.env ?? process.env));
    this.namePrefix = options.namePrefix ?? DEFAULT_NAME_PREFIX;
    checkNamePrefix(this.namePrefix);
    this.headers = options.headers && Object.keys(options.headers).length ? { ...options.headers } : undefined;
    this.healthTimeoutMs = options.healthTimeoutMs ?? 2_000;
    this.removeStale = options.removeStale ?? true;
    this.warn = options.warn ?? ((m) => console.warn(m));
  }

  /** Check the store is writable (throws), clean stale registrations, warn when the server is down. */
  start(): Promise<void> {
    if (!this.started) {
      this.started = this.doStart().catch((e: unknown) => {
        this.started = undefined;
        throw e;
      });
    }
    return this.started;
  }

  private async doStart(): Promise<void> {
    try {
      for (const d of ["blobs", "manifests", STORE_TMP_DIR]) mkdirSync(join(this.storeDir, d), { recursive: true });
      const probe = join(this.storeDir, STORE_TMP_DIR, `probe-${randomBytes(6).toString("hex")}`);
      writeFileSync(probe, "");
      unlinkSync(probe);
    } catch (e) {
      throw new EngineError("HOST_STORE_NOT_WRITABLE", `the Ollama store ${this.storeDir} is not writable: ${(e as Error).message}`, { storeDir: this.storeDir });
    }
    if (this.removeStale) await this.cleanStale();
    const version = await this.version();
    if (version === undefined) {
      this.warn(`secneuron: Ollama does not answer at ${this.upstream}/api/version; registrations go to ${this.storeDir} and are served once it is up`);
    }
  }

  async ensureModel(name: string, path: string): Promise<HostTarget> {
    const ollama = ollamaModelName(name, this.namePrefix);
    const abs = resolve(path);
    // Fast path (every request): same file, manifest still there.
    const known = this.regs.get(name);
    if (known && known.path === abs) {
      const st = this.statModel(abs);
      if (st.dev === known.dev && st.ino === known.ino && st.size === known.weights.size && this.exists(known.manifestPath)) return this.target(known);
    }
    return this.withLock(name, () => this.register(name, ollama, abs));
  }

  async removeModel(name: string): Promise<void> {
    let ollama: OllamaName;
    try {
      ollama = ollamaModelName(name, this.namePrefix);
    } catch {
      return; // never registrable, so never registered
    }
    await this.withLock(name, async () => {
      const reg = this.regs.get(name);
      this.regs.delete(name);
      if (this.owners.get(ollama.full) === name) this.owners.delete(ollama.full);
      this.unregisterFiles(manifestPath(this.storeDir, ollama), reg);
    });
  }

  /** Variant names registered now. */
  registered(): string[] {
    return [...this.regs.keys()];
  }

  /** The registration of a variant name (tests, diagnostics). */
  registration(name: string): OllamaRegistration | undefined {
    return this.regs.get(name);
  }

  /** Admin-only routes (pull, create, copy, delete, blobs) go to the Ollama server as they are. */
  adminTarget(): HostTarget {
    return { baseUrl: this.upstream, modelName: "", ...(this.headers ? { headers: this.headers } : {}) };
  }

  async healthy(): Promise<boolean> {
    return (await this.version()) !== undefined;
  }

  /** The server's version from GET /api/version, or undefined when it does not answer. */
  async version(): Promise<string | undefined> {
    try {
      const r = await fetch(`${this.upstream}/api/version`, { headers: this.headers, signal: AbortSignal.timeout(this.healthTimeoutMs) });
      if (r.status !== 200) {
        await r.body?.cancel().catch(() => {});
        return undefined;
      }
      const body = (await r.json()) as { version?: unknown };
      return typeof body?.version === "string" ? body.version : undefined;
    } catch {
      return undefined;
    }
  }

  /** Unregister everything (the variants are about to go away). */
  async stop(): Promise<void> {
    for (const name of [...this.regs.keys()]) await this.removeModel(name).catch(() => {});
    this.started = undefined;
  }

  // -------------------------------------------------------------------------------------------

  private target(reg: OllamaRegistration): HostTarget {
    return this.headers ? { baseUrl: this.upstream, modelName: reg.ollama.full, headers: this.headers } : { baseUrl: this.upstream, modelName: reg.ollama.full };
  }

  private withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }

  private exists(p: string): boolean {
    try {
      lstatSync(p);
      return true;
    } catch {
      return false;
    }
  }

  private statModel(abs: string): Stats {
    let st: Stats;
    try {
      st = statSync(abs);
    } catch (e) {
      throw new EngineError("HOST_MODEL_MISSING", `model file ${abs} cannot be read: ${(e as Error).message}`, { modelPath: abs });
    }
    if (!st.isFile()) throw new EngineError("HOST_MODEL_MISSING", `model file ${abs} is not a regular file`, { modelPath: abs });
    return st;
  }

  private async register(name: string, ollama: OllamaName, abs: string): Promise<HostTarget> {
    const known = this.regs.get(name);
    const st = this.statModel(abs);
    if (known && known.path === abs && st.dev === known.dev && st.ino === known.ino && st.size === known.weights.size && this.exists(known.manifestPath)) {
      return this.target(known);
    }
    const owner = this.owners.get(ollama.full);
    if (owner !== undefined && owner !== name) {
      throw new EngineError("HOST_NAME_COLLISION", `model names ${JSON.stringify(owner)} and ${JSON.stringify(name)} both map to Ollama model ${ollama.full}`, { name, other: owner });
    }
    // Validate before anything is written (throws typed errors).
    let info: ReturnType<typeof describeModelFile>;
    try {
      info = describeModelFile(name, abs);
    } catch (e) {
      if (e instanceof SecNeuronError) throw e;
      throw new EngineError("ENGINE_MODEL_UNREADABLE", `cannot read model ${abs}: ${(e as Error).message}`, { modelPath: abs });
    }
    const { digest, size } = await this.digests.digest(abs);
    if (!this.started) await this.start();

    const weights: ManifestLayer = { mediaType: MODEL_MEDIA_TYPE, digest, size };
    const configBytes = Buffer.from(JSON.stringify(this.configFor(name, abs, info, digest)));
    const config: ManifestLayer = { mediaType: CONFIG_MEDIA_TYPE, digest: `sha256:${sha256Hex(configBytes)}`, size: configBytes.length };
    const mPath = manifestPath(this.storeDir, ollama);
    const created: string[] = [];
    try {
      // A concurrent `ollama rm` of another model prunes blobs no manifest references: if ours
      // goes between linking and the manifest write, link it again.
      for (let attempt = 0; ; attempt++) {
        if (this.linkWeights(digest, abs)) created.push(blobPath(this.storeDir, digest));
        if (this.writeConfig(config.digest, configBytes)) created.push(blobPath(this.storeDir, config.digest));
        this.writeAtomic(mPath, Buffer.from(manifestJson(config, weights)));
        if (this.exists(blobPath(this.storeDir, digest)) && this.exists(blobPath(this.storeDir, config.digest))) break;
        if (attempt >= 2) throw new EngineError("HOST_STORE_RACE", `the blobs of ${ollama.full} keep disappearing from ${this.storeDir}`);
      }
    } catch (e) {
      for (const p of created) rmSync(p, { force: true });
      throw e instanceof SecNeuronError ? e : new EngineError("HOST_STORE_WRITE_FAILED", `cannot register ${ollama.full} in ${this.storeDir}: ${(e as Error).message}`, { storeDir: this.storeDir });
    }
    const reg: OllamaRegistration = { name, ollama, path: abs, dev: st.dev, ino: st.ino, weights, config, manifestPath: mPath };
    this.regs.set(name, reg);
    this.owners.set(ollama.full, name);
    // A previous registration of this name with other blobs: drop those now unreferenced.
    if (known && (known.weights.digest !== digest || known.config.digest !== config.digest)) {
      this.removeOurBlobs([known.weights.digest, known.config.digest].filter((d) => d !== digest && d !== config.digest));
    }
    return this.target(reg);
  }

  private configFor(name: string, abs: string, info: ReturnType<typeof describeModelFile>, digest: string): OllamaConfig {
    let fileType = info.quantizationLevel;
    try {
      const ft = readGgufHeader(abs).metadata.get("general.file_type");
      if (ft && ft.type === GgufValueType.UINT32 && LLAMA_FTYPE_NAMES[ft.value as number]) fileType = LLAMA_FTYPE_NAMES[ft.value as number]!;
    } catch {
      // keep the dominant tensor type
    }
    return {
      model_format: "gguf",
      model_family: info.family,
      model_families: [info.family],
      model_type: info.parameterSize,
      file_type: fileType,
      architecture: goArch(),
      os: goOs(),
      rootfs: { type: "layers", diff_ids: [digest] },
      secneuron: { name },
    };
  }

  /**
   * Make blobs/sha256-<digest> a symlink to `abs`. True when this call created it. An existing
   * symlink to `abs` is reused; a dangling symlink is replaced; anything else (a real blob, e.g.
   * the same weights the user imported, or a link to another file) is refused: a revoke that
   * zeroes `abs` in place would never reach it.
   */
  private linkWeights(digest: string, abs: string): boolean {
    const p = blobPath(this.storeDir, digest);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        symlinkSync(abs, p);
        return true;
      } catch (e) {
        if (errnoCode(e) !== "EEXIST") throw e;
      }
      let lst: Stats;
      try {
        lst = lstatSync(p);
      } catch {
        continue; // removed meanwhile: try again
      }
      if (lst.isSymbolicLink()) {
        const target = resolve(dirname(p), readlinkSync(p));
        if (target === abs) return false;
        if (!statSafe(target)) {
          rmSync(p, { force: true }); // dangling: holds nothing
          continue;
        }
      }
      throw new EngineError(
        "HOST_BLOB_CONFLICT",
        `the Ollama store already has blob ${digest} and it is not a link secneuron made to ${abs}; refusing to reuse it (a revoke would not reach it). Remove the other model or give secneuron its own store.`,
        { digest, storeDir: this.storeDir },
      );
    }
    throw new EngineError("HOST_STORE_RACE", `blob ${digest} keeps changing in ${this.storeDir}`);
  }

  /** Write a small config blob without clobbering: true when this call created it. */
  private writeConfig(digest: string, bytes: Buffer): boolean {
    const p = blobPath(this.storeDir, digest);
    if (this.exists(p)) {
      const st = lstatSync(p);
      if (st.isFile() && st.size === bytes.length && readFileSync(p).equals(bytes)) return false;
      throw new EngineError("HOST_BLOB_CONFLICT", `config blob ${digest} in ${this.storeDir} does not hold what its name says`, { digest });
    }
    const tmp = this.tmpFile();
    writeFileSync(tmp, bytes, { mode: 0o644 });
    try {
      linkSync(tmp, p);
      return true;
    } catch (e) {
      if (errnoCode(e) === "EEXIST" && readFileSync(p).equals(bytes)) return false;
      throw e;
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  private writeAtomic(path: string, bytes: Buffer): void {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = this.tmpFile();
    try {
      writeFileSync(tmp, bytes, { mode: 0o644 });
      renameSync(tmp, path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  private tmpFile(): string {
    const dir = join(this.storeDir, STORE_TMP_DIR);
    mkdirSync(dir, { recursive: true });
    return join(dir, `${process.pid}-${randomBytes(8).toString("hex")}.tmp`);
  }

  /** Remove a manifest of ours and those of its blobs we made that nothing else references. */
  private unregisterFiles(mPath: string, reg: OllamaRegistration | undefined): void {
    const m = readManifest(mPath);
    const digests = new Set<string>();
    if (reg) {
      digests.add(reg.weights.digest);
      digests.add(reg.config.digest);
    }
    if (m) {
      if (typeof m.config?.digest === "string") digests.add(m.config.digest);
      for (const l of Array.isArray(m.layers) ? m.layers : []) if (typeof l?.digest === "string") digests.add(l.digest);
    }
    rmSync(mPath, { force: true });
    this.pruneEmptyDirs(dirname(mPath));
    this.removeOurBlobs([...digests]);
  }

  /**
   * Delete blobs that are ours and unreferenced by every manifest left in the store: a weights
   * blob is ours when it is a symlink (Ollama never makes symlinks; we refuse to reference a
   * foreign one), a config blob when it carries our marker.
   */
  private removeOurBlobs(digests: readonly string[]): void {
    if (digests.length === 0) return;
    const referenced = new Set<string>();
    for (const f of listManifestFiles(join(this.storeDir, "manifests"))) {
      const m = readManifest(f);
      if (!m) continue;
      if (typeof m.config?.digest === "string") referenced.add(m.config.digest);
      for (const l of Array.isArray(m.layers) ? m.layers : []) if (typeof l?.digest === "string") referenced.add(l.digest);
    }
    for (const d of digests) {
      if (referenced.has(d)) continue;
      let p: string;
      try {
        p = blobPath(this.storeDir, d);
      } catch {
        continue;
      }
      let lst: Stats;
      try {
        lst = lstatSync(p);
      } catch {
        continue;
      }
      if (lst.isSymbolicLink() || (lst.isFile() && lst.size < 64 * 1024 && isOurConfig(p))) rmSync(p, { force: true });
    }
  }

  private pruneEmptyDirs(dir: string): void {
    const stopAt = resolve(this.storeDir, "manifests");
    let d = resolve(dir);
    while (d.startsWith(`${stopAt}/`)) {
      try {
        rmdirSync(d);
      } catch {
        return; // not empty, or gone
      }
      d = dirname(d);
    }
  }

  /** Remove every manifest under our prefix (left by an earlier run: nothing is registered yet) and our blobs. */
  private async cleanStale(): Promise<void> {
    const lib = join(this.storeDir, "manifests", "registry.ollama.ai", "library");
    let models: string[];
    try {
      models = readdirSync(lib).filter((m) => m.startsWith(this.namePrefix));
    } catch {
      return;
    }
    const live = new Set([...this.regs.values()].map((r) => r.manifestPath));
    for (const model of models) {
      const dir = join(lib, model);
      let tags: string[];
      try {
        tags = readdirSync(dir);
      } catch {
        continue;
      }
      for (const tag of tags) {
        const p = join(dir, tag);
        if (live.has(p)) continue;
        this.unregisterFiles(p, undefined);
      }
    }
  }
}

function statSafe(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

function isOurConfig(p: string): boolean {
  try {
    const c = JSON.parse(readFileSync(p, "utf8")) as { secneuron?: { name?: unknown } };
    return typeof c?.secneuron?.name === "string";
  } catch {
    return false;
  }
}
