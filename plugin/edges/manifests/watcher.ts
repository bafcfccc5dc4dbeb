/**
 * ManifestWatcher: keeps a Keyring in step with the `*.manifest.json` files of one folder
 * (chokidar; polling for bind mounts). Rules, in full, in docs/manifest-reload.md:
 *
 * - Every add/change/unlink marks the file dirty; dirty files are processed in batches
 *   (debounceMs), one batch at a time. A dirty file is re-read: gone means removed, otherwise it
 *   is verified (verifyManifestFile: schema, canonical form, signature, authority, KDF floor).
 * - Per file the watcher keeps the version in force (the last good one) and the latest verified
 *   content. A bad latest version (corrupt, bad signature, wrong authority, duplicate) is
 *   rejected with one structured log line; the last good version stays in force ("stale"), or
 *   the file is absent from the keyring if it never had one ("rejected").
 * - Duplicates (same id or token hash in two files): versions already in force keep their claim;
 *   new content is claimed in file-name order; a loser falls back to its own last good version.
 * - The complete new keyring is built aside and swapped in one assignment. The user-key cache is
 *   shared between snapshots and pruned to the manifests in force.
 * - Revocation: onRevoke(manifest) fires for a manifest of the old keyring when its id is gone
 *   (removed or replaced), or when the same id comes back with another token hash, fewer
 *   attributes or a narrower model scope. Widening, or changing only the validity window, does
 *   not revoke (the window is checked on every request).
 */
import { readdir, stat } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { watch, type FSWatcher } from "chokidar";
import { ManifestError, SecNeuronError } from "../../errors.js";
import type { Instant, KeyManifest } from "../../core/manifest/manifest.js";
import { isWatchedManifestName } from "./manifest-file.js";
import {
  assertKeyringOptions,
  duplicateError,
  Keyring,
  UserKeyCache,
  verifyManifestFile,
  type AuthResult,
  type KeyringEntry,
  type KeyringOptions,
} from "./keyring.js";

export interface ManifestLogRecord {
  level: "info" | "warn" | "error";
  /** manifest.loaded | manifest.removed | manifest.rejected | manifest.revoked | keyring.swapped | watcher.error */
  event: string;
  message: string;
  file?: string;
  id?: string;
  code?: string;
  [field: string]: unknown;
}

/** Receives one structured record per event; the default writes one JSON line to stderr. */
export type ManifestLogger = (record: ManifestLogRecord) => void;

export const stderrJsonLogger: ManifestLogger = (r) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: "manifests", ...r })}\n`);
};

export interface ManifestWatcherOptions extends KeyringOptions {
  /** The watched folder (not recursive). */
  dir: string;
  /** Poll instead of inotify/FSEvents: for bind mounts and network file systems. */
  usePolling?: boolean;
  /** Polling interval in ms (usePolling only). Default 1000. */
  pollIntervalMs?: number;
  /**
   * Wait until a file's size has been stable this long before reading it (chokidar
   * awaitWriteFinish), for writers that do not rename into place. false: off. Default
   * { stabilityThreshold: 200, pollInterval: 50 }.
   */
  awaitWriteFinish?: false | { stabilityThreshold?: number; pollInterval?: number };
  /** Events within this many ms are processed as one batch. Default 50. */
  debounceMs?: number;
  logger?: ManifestLogger;
  /** Used only for the `validity` shown by status(). Default Date.now. */
  clock?: () => number;
  /** Shared user-key cache (default: a fresh one). */
  cache?: UserKeyCache;
}

export type ManifestFileState = "active" | "rejected" | "stale";

export interface ManifestFileStatus {
  file: string;
  /** active: latest version in force; stale: latest rejected, last good in force; rejected: absent. */
  state: ManifestFileState;
  /** Why the latest version was rejected (stale, rejected). */
  error?: string;
  code?: string;
  /** Of the version in force (active, stale). */
  id?: string;
  subject?: string;
  attributes?: string[];
  validity?: "valid" | "not_yet_valid" | "expired";
}

export interface ManifestWatcherStatus {
  /** not_ready until the initial scan is processed; degraded while any file is not active. */
  state: "not_ready" | "ok" | "degraded";
  /** Batches processed so far. */
  generation: number;
  keyringSize: number;
  files: ManifestFileStatus[];
  /** The last watcher-level error (folder missing, permission), if any. */
  watchError?: string;
}

export type RevokeReason = "removed" | "replaced" | "token_changed" | "attributes_narrowed" | "models_narrowed";

export interface RevokeInfo {
  reason: RevokeReason;
  /** The file the revoked manifest came from. */
  file: string;
  /** What took its place, if anything (same id, or the new content of the same file). */
  replacement?: KeyringEntry;
}

export interface KeyringChange {
  generation: number;
  added: KeyringEntry[];
  removed: KeyringEntry[];
  updated: Array<{ before: KeyringEntry; after: KeyringEntry }>;
  revoked: Array<{ entry: KeyringEntry; info: RevokeInfo }>;
}

export interface RejectInfo {
  file?: string;
  /** What stays in force for that file. */
  kept: "last_good" | "none";
}

interface FileRecord {
  name: string;
  /** Latest content, verified; undefined when the latest read failed. */
  candidate?: KeyManifest;
  /** Why the latest content was rejected at load. */
  loadError?: ManifestError;
  /** Why the latest content lost a duplicate claim (recomputed every batch). */
  buildError?: ManifestError;
  /** The version in the current keyring. */
  inForce?: KeyManifest;
  /** The last error message logged for this file (log each problem once). */
  reported?: string;
}

const sameManifest = (a: KeyManifest | undefined, b: KeyManifest | undefined): boolean =>
  a !== undefined && b !== undefined && a.id === b.id && a.signature === b.signature && a.tokenSha256 === b.tokenSha256;

/** Why replacing `before` by `after` (same id) revokes it, or undefined when it does not. */
export function narrowingReason(before: KeyManifest, after: KeyManifest): RevokeReason | undefined {
  if (before.tokenSha256 !== after.tokenSha256) return "token_changed";
  const attrs = new Set(after.attributes);
  if (before.attributes.some((a) => !attrs.has(a))) return "attributes_narrowed";
  if (after.models && after.models.length) {
    if (!before.models || !before.models.length) return "models_narrowed";
    const models = new Set(after.models);
    if (before.models.some((m) => !models.has(m))) return "models_narrowed";
  }
  return undefined;
}

type Listener<A extends unknown[]> = (...args: A) => void;

/**
 * Watches a manifest folder and keeps `current()` up to date. Starts watching on construction;
 * `ready()` resolves once the initial scan is in force (rejects if the folder is not a readable
 * directory or the watcher is closed first). Callbacks registered right after construction see
 * every event.
 */
export class ManifestWatcher {
  readonly #opts: KeyringOptions;
  readonly #dir: string;
  readonly #debounceMs: number;
  readonly #log: ManifestLogger;
  readonly #clock: () => number;
  readonly #cache: UserKeyCache;
  readonly #chokidarOpts: Parameters<typeof watch>[1];
  #fsw: FSWatcher | undefined;
  #keyring: Keyring;
  readonly #records = new Map<string, FileRecord>();
  readonly #pending = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #scanned = false;
  #closed = false;
  #generation = 0;
  #watchError: string | undefined;
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  #rejectReady!: (e: Error) => void;
  readonly #onChange = new Set<Listener<[Keyring, KeyringChange]>>();
  readonly #onRevoke = new Set<Listener<[KeyManifest, RevokeInfo]>>();
  readonly #onError = new Set<Listener<[ManifestError, RejectInfo]>>();

  constructor(opts: ManifestWatcherOptions) {
    assertKeyringOptions(opts);
    if (typeof opts.dir !== "string" || opts.dir.length === 0) {
      throw new ManifestError("MANIFEST_INVALID_INPUT", "manifest watcher: dir (the watched folder) is required", { field: "dir" });
    }
    const nonNeg = (v: number | undefined, name: string, dflt: number): number => {
      if (v === undefined) return dflt;
      if (!Number.isFinite(v) || v < 0) throw new ManifestError("MANIFEST_INVALID_INPUT", `manifest watcher: ${name} must be a number >= 0, got ${v}`, { field: name });
      return v;
    };
    this.#opts = { authority: { ...opts.authority }, allowWeakKdf: opts.allowWeakKdf === true };
    this.#dir = resolve(opts.dir);
    this.#debounceMs = nonNeg(opts.debounceMs, "debounceMs", 50);
    const interval = nonNeg(opts.pollIntervalMs, "pollIntervalMs", 1000);
    this.#log = opts.logger ?? stderrJsonLogger;
    this.#clock = opts.clock ?? Date.now;
    this.#cache = opts.cache ?? new UserKeyCache();
    this.#keyring = new Keyring([], this.#opts, this.#cache);
    const awf =
      opts.awaitWriteFinish === false
        ? false
        : {
            stabilityThreshold: nonNeg(opts.awaitWriteFinish?.stabilityThreshold, "awaitWriteFinish.stabilityThreshold", 200),
            pollInterval: nonNeg(opts.awaitWriteFinish?.pollInterval, "awaitWriteFinish.pollInterval", 50),
          };
    const root = this.#dir;
    this.#chokidarOpts = {
      persistent: true,
      ignoreInitial: false,
      depth: 0,
      usePolling: opts.usePolling === true,
      interval,
      binaryInterval: interval,
      awaitWriteFinish: awf,
      // Dot files (temp files of atomic writers), example.*, anything not *.manifest.json.
      ignored: (p: string) => resolve(p) !== root && !isWatchedManifestName(p),
    };
    this.#ready = new Promise<void>((res, rej) => {
      this.#resolveReady = res;
      this.#rejectReady = rej;
    });
    this.#ready.catch(() => {}); // reported through ready(); never an unhandled rejection
    void this.#start();
  }

  async #start(): Promise<void> {
    try {
      const st = await stat(this.#dir);
      if (!st.isDirectory()) throw new Error("not a directory");
    } catch (e) {
      const err = new ManifestError("MANIFEST_WATCH_FAILED", `manifest folder ${this.#dir}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such directory" : (e as Error).message}`, {
        dir: this.#dir,
      });
      this.#watchError = err.message;
      this.#emitLog({ level: "error", event: "watcher.error", message: err.message, code: err.code });
      this.#fireError(err, { kept: "last_good" });
      this.#rejectReady(err);
      return;
    }
    if (this.#closed) return;
    const fsw = watch(this.#dir, this.#chokidarOpts);
    this.#fsw = fsw;
    const onFile = (p: string) => {
      if (isWatchedManifestName(p)) this.#markDirty(basename(p));
    };
    fsw.on("add", onFile);
    fsw.on("change", onFile);
    fsw.on("unlink", onFile);
    fsw.on("error", (e: unknown) => {
      const err = new ManifestError("MANIFEST_WATCH_FAILED", `manifest folder ${this.#dir}: watch error: ${(e as Error)?.message ?? String(e)}`, { dir: this.#dir });
      this.#watchError = err.message;
      this.#emitLog({ level: "error", event: "watcher.error", message: err.message, code: err.code });
      this.#fireError(err, { kept: "last_good" });
    });
    fsw.once("ready", () => {
      this.#scanned = true;
      this.#flush().then(
        () => this.#resolveReady(),
        (e) => this.#rejectReady(e as Error),
      );
    });
  }

  /** Resolves once the initial scan is in force. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The keyring in force: an immutable snapshot (hold it for the length of one request). */
  current(): Keyring {
    return this.#keyring;
  }

  /** The watched folder (resolved). */
  get dir(): string {
    return this.#dir;
  }

  /**
   * current().authenticate, then a check that the manifest is still in force: a request whose
   * manifest was removed or replaced during the (first, slow) unwrap is denied as "revoked".
   */
  async authenticate(token: string, now: Instant): Promise<AuthResult> {
    const k = this.#keyring;
    const r = await k.authenticate(token, now);
    if (!r.ok || this.#keyring === k) return r;
    const e = this.#keyring.get(r.manifest.id);
    if (e && sameManifest(e.manifest, r.manifest)) return r;
    return { ok: false, reason: "revoked", code: "MANIFEST_REVOKED", message: `manifest ${r.manifest.id} was revoked during authentication`, id: r.manifest.id, file: r.file };
  }

  status(): ManifestWatcherStatus {
    const now = this.#clock();
    const files: ManifestFileStatus[] = [];
    for (const name of [...this.#records.keys()].sort()) {
      const r = this.#records.get(name)!;
      const err = r.loadError ?? r.buildError;
      const m = r.inForce;
      const state: ManifestFileState = m === undefined ? "rejected" : err ? "stale" : "active";
      const s: ManifestFileStatus = { file: name, state };
      if (err) {
        s.error = err.message;
        s.code = err.code;
      }
      if (m) {
        s.id = m.id;
        s.subject = m.subject;
        s.attributes = [...m.attributes];
        s.validity = now < Date.parse(m.notBefore) ? "not_yet_valid" : m.expires !== undefined && now >= Date.parse(m.expires) ? "expired" : "valid";
      }
      files.push(s);
    }
    const state = !this.#scanned || this.#generation === 0 ? "not_ready" : this.#watchError || files.some((f) => f.state !== "active") ? "degraded" : "ok";
    return {
      state,
      generation: this.#generation,
      keyringSize: this.#keyring.size,
      files,
      ...(this.#watchError ? { watchError: this.#watchError } : {}),
    };
  }

  /** Called after each keyring swap. Returns an unsubscribe function. */
  onChange(fn: (keyring: Keyring, change: KeyringChange) => void): () => void {
    this.#onChange.add(fn);
    return () => this.#onChange.delete(fn);
  }

  /** Called for each manifest revoked by a swap (after the swap). */
  onRevoke(fn: (manifest: KeyManifest, info: RevokeInfo) => void): () => void {
    this.#onRevoke.add(fn);
    return () => this.#onRevoke.delete(fn);
  }

  /** Called for each rejected file version and for watcher errors. */
  onError(fn: (error: ManifestError, info: RejectInfo) => void): () => void {
    this.#onError.add(fn);
    return () => this.#onError.delete(fn);
  }

  /** Re-reads every file of the folder and every known file (for SIGHUP or missed events). */
  async rescan(): Promise<void> {
    if (this.#closed) return;
    try {
      for (const name of await readdir(this.#dir)) if (isWatchedManifestName(name)) this.#pending.add(name);
    } catch (e) {
      this.#watchError = `manifest folder ${this.#dir}: ${(e as Error).message}`;
    }
    for (const name of this.#records.keys()) this.#pending.add(name);
    await this.#flush();
  }

  /** Stops watching; waits for the batch in progress. current() keeps the last keyring. */
  async close(): Promise<void> {
    if (this.#closed) return this.#chain;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
    this.#rejectReady(new ManifestError("MANIFEST_WATCH_CLOSED", "manifest watcher closed before the initial scan finished", { dir: this.#dir }));
    await this.#fsw?.close();
    await this.#chain;
  }

  // -------------------------------------------------------------------------------------------

  #markDirty(name: string): void {
    if (this.#closed) return;
    this.#pending.add(name);
    if (!this.#scanned || this.#timer) return; // the initial scan is flushed on "ready"
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, this.#debounceMs);
  }

  #flush(): Promise<void> {
    const run = this.#chain.then(() => this.#process());
    this.#chain = run.catch((e) => {
      this.#emitLog({ level: "error", event: "watcher.error", message: `manifest reload failed: ${(e as Error)?.message ?? String(e)}` });
    });
    return this.#chain;
  }

  async #process(): Promise<void> {
    if (this.#closed) return;
    const batch = [...this.#pending].sort();
    this.#pending.clear();
    // 1. Read and verify every dirty file (aside: nothing in force changes yet).
    const loaded = await Promise.all(
      batch.map(async (name) => {
        try {
          return { name, manifest: await verifyManifestFile(resolve(this.#dir, name), this.#opts, name) };
        } catch (e) {
          const err = e instanceof ManifestError ? e : new ManifestError("MANIFEST_LOAD_FAILED", `${name}: ${(e as Error)?.message ?? String(e)}`, { file: name });
          return { name, error: err };
        }
      }),
    );
    // 2. Next per-file records (copies: the live ones change only at the swap).
    const next = new Map<string, FileRecord>();
    for (const [name, r] of this.#records) next.set(name, { ...r, buildError: undefined });
    for (const l of loaded) {
      const prev = next.get(l.name);
      if (l.error && l.error.details.errno === "ENOENT") {
        next.delete(l.name);
      } else if (l.error) {
        next.set(l.name, { name: l.name, inForce: prev?.inForce, loadError: l.error, reported: prev?.reported });
      } else {
        next.set(l.name, { name: l.name, inForce: prev?.inForce, candidate: l.manifest, reported: prev?.reported });
      }
    }
    // 3. Resolve claims (duplicates) and build the new keyring aside.
    const names = [...next.keys()].sort();
    const byId = new Map<string, string>();
    const byHash = new Map<string, string>();
    const chosen = new Map<string, KeyManifest>();
    const conflict = (name: string, m: KeyManifest): ManifestError | undefined => {
      const a = byId.get(m.id);
      if (a !== undefined && a !== name) return duplicateError(name, m, a, "id");
      const b = byHash.get(m.tokenSha256);
      if (b !== undefined && b !== name) return duplicateError(name, m, b, "tokenSha256");
      return undefined;
    };
    const claim = (name: string, m: KeyManifest) => {
      byId.set(m.id, name);
      byHash.set(m.tokenSha256, name);
      chosen.set(name, m);
    };
    // 3a. Versions in force that stay (unchanged, or latest content rejected at load).
    for (const name of names) {
      const r = next.get(name)!;
      if (r.inForce && (r.candidate === undefined || sameManifest(r.candidate, r.inForce))) {
        const c = conflict(name, r.inForce);
        if (c) r.buildError = c;
        else claim(name, r.inForce);
      }
    }
    // 3b. New content, in file-name order; a loser falls back to its last good version.
    for (const name of names) {
      const r = next.get(name)!;
      if (r.candidate === undefined || sameManifest(r.candidate, r.inForce)) continue;
      const c = conflict(name, r.candidate);
      if (!c) {
        claim(name, r.candidate);
        continue;
      }
      r.buildError = c;
      if (r.inForce && !conflict(name, r.inForce)) claim(name, r.inForce);
    }
    for (const [name, r] of next) r.inForce = chosen.get(name);
    const entries: KeyringEntry[] = names.filter((n) => chosen.has(n)).map((n) => ({ file: n, manifest: chosen.get(n)! }));
    const old = this.#keyring;
    const changed = old.size !== entries.length || entries.some((e) => !sameManifest(old.get(e.manifest.id)?.manifest, e.manifest) || old.get(e.manifest.id)?.file !== e.file);
    const keyring = changed ? new Keyring(entries, this.#opts, this.#cache) : old;
    const change = changed ? this.#diff(old, keyring) : undefined;

    // 4. Swap (one reference), then report.
    this.#keyring = keyring;
    this.#records.clear();
    for (const [name, r] of next) this.#records.set(name, r);
    this.#generation++;
    if (changed) this.#cache.retain(keyring.entries().map((e) => e.manifest));

    const reread = new Set(loaded.map((l) => l.name));
    for (const r of this.#records.values()) {
      const err = r.loadError ?? r.buildError;
      if (!err) {
        r.reported = undefined;
        continue;
      }
      // A file re-read and rejected is always reported; a standing duplicate only when it changes.
      if (r.reported === err.message && !(r.loadError && reread.has(r.name))) continue;
      r.reported = err.message;
      const kept = r.inForce ? "last_good" : "none";
      this.#emitLog({
        level: "error",
        event: "manifest.rejected",
        message: `${err.message}; ${kept === "last_good" ? `the last good version (manifest ${r.inForce!.id}) stays in force` : "the file is not in force"}`,
        file: r.name,
        code: err.code,
        kept,
        ...(r.inForce ? { id: r.inForce.id } : {}),
      });
      this.#fireError(err, { file: r.name, kept });
    }
    if (change) {
      for (const e of change.added) this.#emitLog({ level: "info", event: "manifest.loaded", message: `${e.file}: manifest ${e.manifest.id} (${e.manifest.subject}) in force`, file: e.file, id: e.manifest.id, subject: e.manifest.subject, attributes: e.manifest.attributes });
      for (const u of change.updated) this.#emitLog({ level: "info", event: "manifest.loaded", message: `${u.after.file}: manifest ${u.after.manifest.id} (${u.after.manifest.subject}) updated`, file: u.after.file, id: u.after.manifest.id, subject: u.after.manifest.subject, attributes: u.after.manifest.attributes });
      for (const e of change.removed) this.#emitLog({ level: "info", event: "manifest.removed", message: `${e.file}: manifest ${e.manifest.id} (${e.manifest.subject}) no longer in force`, file: e.file, id: e.manifest.id });
      for (const { entry, info } of change.revoked) this.#emitLog({ level: "warn", event: "manifest.revoked", message: `${entry.file}: manifest ${entry.manifest.id} (${entry.manifest.subject}) revoked: ${info.reason}`, file: entry.file, id: entry.manifest.id, reason: info.reason });
      this.#emitLog({ level: "info", event: "keyring.swapped", message: `keyring generation ${this.#generation}: ${keyring.size} manifest(s) in force`, generation: this.#generation, size: keyring.size });
      for (const { entry, info } of change.revoked) this.#call(this.#onRevoke, "onRevoke", entry.manifest, info);
      this.#call(this.#onChange, "onChange", keyring, change);
    }
  }

  #diff(old: Keyring, now: Keyring): KeyringChange {
    const change: KeyringChange = { generation: this.#generation + 1, added: [], removed: [], updated: [], revoked: [] };
    const byFile = new Map(now.entries().map((e) => [e.file, e] as const));
    for (const before of old.entries()) {
      const after = now.get(before.manifest.id);
      if (!after) {
        change.removed.push(before);
        const successor = byFile.get(before.file);
        change.revoked.push({ entry: before, info: successor ? { reason: "replaced", file: before.file, replacement: successor } : { reason: "removed", file: before.file } });
        continue;
      }
      if (!sameManifest(before.manifest, after.manifest) || before.file !== after.file) {
        change.updated.push({ before, after });
        const reason = narrowingReason(before.manifest, after.manifest);
        if (reason) change.revoked.push({ entry: before, info: { reason, file: before.file, replacement: after } });
      }
    }
    for (const e of now.entries()) if (!old.get(e.manifest.id)) change.added.push(e);
    return change;
  }

  #emitLog(r: ManifestLogRecord): void {
    try {
      this.#log({ ...r, dir: this.#dir });
    } catch {
      // A broken logger must not stop reloads.
    }
  }

  #fireError(err: ManifestError, info: RejectInfo): void {
    this.#call(this.#onError, "onError", err, info);
  }

  #call<A extends unknown[]>(fns: Set<Listener<A>>, what: string, ...args: A): void {
    for (const fn of fns) {
      try {
        fn(...args);
      } catch (e) {
        this.#emitLog({ level: "error", event: "watcher.error", message: `${what} callback threw: ${(e as Error)?.message ?? String(e)}`, code: e instanceof SecNeuronError ? e.code : undefined });
      }
    }
  }
}
