/**
 * The keyring: an immutable snapshot of the key manifests in force, indexed for token lookup.
 * docs/manifest-reload.md describes how the watcher builds and swaps it.
 *
 *   verifyManifestFile  read one file, check schema, canonical form, signature, expected authority
 *                       and KDF floor (not the validity window: that is checked per request)
 *   Keyring             entries indexed by tokenSha256 and by id; duplicates throw
 *                       MANIFEST_DUPLICATE naming both files; authenticate(token, now)
 *   UserKeyCache        the unwrapped CP-ABE user keys (one scrypt run per manifest + token),
 *                       shared by successive snapshots so a reload does not redo the KDF
 *
 * Token lookup: the token is hashed (SHA-256), the hash is looked up in a Map and the match is
 * confirmed with crypto.timingSafeEqual. The Map lookup itself is not constant time, but its key
 * is the hash of a 256-bit random token, so timing reveals nothing an attacker can use.
 *
 * Error codes (ManifestError) raised here, besides those of core/manifest:
 *   MANIFEST_INVALID_INPUT  bad keyring options
 *   MANIFEST_READ_FAILED    the file cannot be read (details.errno: ENOENT when it is gone)
 *   MANIFEST_TOO_LARGE      the file is over MAX_MANIFEST_FILE_BYTES
 *   MANIFEST_DUPLICATE      two files hold the same manifest id or the same token hash
 *   MANIFEST_WRONG_AUTHORITY an entry given to the Keyring constructor names another authority
 */
import { timingSafeEqual } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { ManifestError, SecNeuronError } from "../../errors.js";
import type { UserKey } from "../../core/abe/fame.js";
import {
  openManifestAsync,
  parseManifest,
  type Instant,
  type KeyManifest,
  type OpenedManifest,
  type OpenManifestOptions,
} from "../../core/manifest/manifest.js";
import { createHash } from "node:crypto";
import { isTokenShaped } from "../../core/manifest/token.js";

/** Manifest files are a few KiB; anything over this is rejected unread. */
export const MAX_MANIFEST_FILE_BYTES = 1024 * 1024;

const HEX64 = /^[0-9a-f]{64}$/;

/** The authority whose manifests the keyring accepts (AuthorityPublic from edges/authority fits). */
export interface ExpectedAuthority {
  /** Hex ed25519 public key of the issuer. */
  issuerKey: string;
  /** Hex SHA-256 of the encoded CP-ABE public params. */
  fingerprint: string;
}

export interface KeyringOptions {
  /** Required: manifests of any other authority are rejected at load. */
  authority: ExpectedAuthority;
  /** Tests only: accept manifests whose KDF cost is below MIN_KDF_LOG_N. */
  allowWeakKdf?: boolean;
}

/** One manifest in force and the file (name relative to the watched folder) it came from. */
export interface KeyringEntry {
  readonly file: string;
  readonly manifest: KeyManifest;
}

export type AuthFailureReason =
  | "malformed_token" // not shaped like an sn_ token
  | "unknown_token" // no manifest in force holds this token's hash
  | "not_yet_valid" // now < notBefore
  | "expired" // now >= expires
  | "unwrap_failed" // the manifest's user key could not be unwrapped or did not match
  | "revoked"; // the manifest was replaced or removed while the request was being authenticated

export type AuthResult =
  | { ok: true; manifest: KeyManifest; file: string; userKey: UserKey }
  | { ok: false; reason: AuthFailureReason; code: string; message: string; id?: string; file?: string };

/** Checks keyring options when they are constructed; throws MANIFEST_INVALID_INPUT. */
export function assertKeyringOptions(opts: KeyringOptions): void {
  const bad = (what: string, found: unknown) =>
    new ManifestError("MANIFEST_INVALID_INPUT", `keyring options: ${what} must be 64 lowercase hex digits, got ${JSON.stringify(found)}`, { field: what });
  if (typeof opts !== "object" || opts === null || typeof opts.authority !== "object" || opts.authority === null) {
    throw new ManifestError("MANIFEST_INVALID_INPUT", "keyring options: authority { issuerKey, fingerprint } is required (manifests are accepted from one authority only)", {
      field: "authority",
    });
  }
  if (typeof opts.authority.issuerKey !== "string" || !HEX64.test(opts.authority.issuerKey)) throw bad("authority.issuerKey", opts.authority.issuerKey);
  if (typeof opts.authority.fingerprint !== "string" || !HEX64.test(opts.authority.fingerprint)) throw bad("authority.fingerprint", opts.authority.fingerprint);
}

function withFile(e: unknown, file: string): ManifestError {
  if (e instanceof ManifestError) return new ManifestError(e.code, `${file}: ${e.message}`, { ...e.details, file });
  if (e instanceof SecNeuronError) return new ManifestError(e.code, `${file}: ${e.message}`, { ...e.details, file });
  return new ManifestError("MANIFEST_LOAD_FAILED", `${file}: ${(e as Error)?.message ?? String(e)}`, { file });
}

/**
 * Reads and verifies one manifest file: size cap, UTF-8, JSON, schema, canonical form, signature,
 * expected authority, KDF floor. The validity window is NOT checked here (a not-yet-valid
 * manifest may be installed ahead of time, an expired one is denied per request), except that a
 * manifest that can never be valid (expires <= notBefore) is rejected. Errors are ManifestErrors
 * whose message starts with `name` and whose details carry `file: name`.
 */
export async function verifyManifestFile(path: string, opts: KeyringOptions, name: string = basename(path)): Promise<KeyManifest> {
  assertKeyringOptions(opts);
  let bytes: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new ManifestError("MANIFEST_READ_FAILED", "not a regular file", { errno: "ENOTFILE" });
    if (st.size > MAX_MANIFEST_FILE_BYTES) {
      throw new ManifestError("MANIFEST_TOO_LARGE", `${st.size} bytes, the limit is ${MAX_MANIFEST_FILE_BYTES}`, { size: st.size, max: MAX_MANIFEST_FILE_BYTES });
    }
    bytes = await readFile(path);
    if (bytes.length > MAX_MANIFEST_FILE_BYTES) {
      throw new ManifestError("MANIFEST_TOO_LARGE", `${bytes.length} bytes, the limit is ${MAX_MANIFEST_FILE_BYTES}`, { size: bytes.length, max: MAX_MANIFEST_FILE_BYTES });
    }
  } catch (e) {
    if (e instanceof ManifestError) throw withFile(e, name);
    const err = e as NodeJS.ErrnoException;
    throw new ManifestError("MANIFEST_READ_FAILED", `${name}: cannot read: ${err.code === "ENOENT" ? "no such file" : err.message}`, { file: name, errno: err.code });
  }
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  try {
    // Parse first for notBefore, then run every token-free check at the start of the window.
    const notBefore = Date.parse(parseManifest(u8).notBefore);
    const opened = await openManifestAsync(u8, {
      now: notBefore,
      expectedIssuer: opts.authority.issuerKey,
      expectedFingerprint: opts.authority.fingerprint,
      allowWeakKdf: opts.allowWeakKdf,
    });
    return opened.manifest;
  } catch (e) {
    throw withFile(e, name);
  }
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as object)) deepFreeze(x);
  }
  return v;
}

/** The MANIFEST_DUPLICATE error for `file` colliding with `otherFile` on `field`. */
export function duplicateError(file: string, m: KeyManifest, otherFile: string, field: "id" | "tokenSha256"): ManifestError {
  const what = field === "id" ? `the same manifest id ${m.id}` : "the same token hash (one API token would open both)";
  return new ManifestError("MANIFEST_DUPLICATE", `${file}: duplicate of ${otherFile}: both hold ${what}; remove one of the two files`, {
    file,
    other: otherFile,
    field,
    id: m.id,
  });
}

/** Opens a manifest with a token (the KDF runs here). Replaceable for instrumentation and tests. */
export type ManifestOpener = (input: KeyManifest, opts: OpenManifestOptions) => Promise<OpenedManifest>;

/**
 * Unwrapped user keys, one per manifest (id, token hash and signature: any re-signed content is a
 * new key). Concurrent requests for the same key share one KDF run. Failures are not cached.
 * Shared between keyring snapshots; the watcher prunes it to the manifests in force after each
 * swap. Keys stay in process memory for the life of the entry.
 */
export class UserKeyCache {
  readonly #open: ManifestOpener;
  readonly #entries = new Map<string, Promise<UserKey>>();
  #unwraps = 0;
  #hits = 0;

  constructor(opts: { open?: ManifestOpener } = {}) {
    this.#open = opts.open ?? ((input, o) => openManifestAsync(input, o));
  }

  static keyOf(m: KeyManifest): string {
    return `${m.id}:${m.tokenSha256}:${m.signature}`;
  }

  /** The user key of `m` for `token` (whose hash the caller has matched to m.tokenSha256). */
  get(m: KeyManifest, token: string, opts: OpenManifestOptions): Promise<UserKey> {
    const k = UserKeyCache.keyOf(m);
    const hit = this.#entries.get(k);
    if (hit) {
      this.#hits++;
      return hit;
    }
    this.#unwraps++;
    const p = this.#open(m, { ...opts, token }).then((o) => {
      if (!o.userKey) throw new ManifestError("MANIFEST_UNWRAP_FAILED", `manifest ${m.id}: no user key was unwrapped`, { id: m.id });
      return o.userKey;
    });
    this.#entries.set(k, p);
    p.catch(() => {
      if (this.#entries.get(k) === p) this.#entries.delete(k);
    });
    return p;
  }

  /** Drops every key whose manifest is not among `manifests`. */
  retain(manifests: Iterable<KeyManifest>): void {
    const keep = new Set<string>();
    for (const m of manifests) keep.add(UserKeyCache.keyOf(m));
    for (const k of [...this.#entries.keys()]) if (!keep.has(k)) this.#entries.delete(k);
  }

  clear(): void {
    this.#entries.clear();
  }

  /** size: keys held; unwraps: KDF runs started; hits: requests served from the cache. */
  stats(): { size: number; unwraps: number; hits: number } {
    return { size: this.#entries.size, unwraps: this.#unwraps, hits: this.#hits };
  }
}

function ms(t: Instant): number {
  return typeof t === "number" ? t : t.getTime();
}

/**
 * An immutable set of manifests in force. Build a new one to change anything; the watcher swaps
 * one reference. The constructor throws MANIFEST_DUPLICATE (naming both files) when two entries
 * share an id or a token hash, and MANIFEST_WRONG_AUTHORITY for an entry of another authority.
 */
export class Keyring {
  readonly #entries: readonly KeyringEntry[];
  readonly #byHash = new Map<string, KeyringEntry>();
  readonly #byId = new Map<string, KeyringEntry>();
  readonly #opts: KeyringOptions;
  readonly #cache: UserKeyCache;

  constructor(entries: Iterable<KeyringEntry>, opts: KeyringOptions, cache: UserKeyCache = new UserKeyCache()) {
    assertKeyringOptions(opts);
    this.#opts = deepFreeze(structuredClone({ authority: { issuerKey: opts.authority.issuerKey, fingerprint: opts.authority.fingerprint }, allowWeakKdf: opts.allowWeakKdf === true }));
    this.#cache = cache;
    const list: KeyringEntry[] = [];
    for (const e of entries) {
      const m = e.manifest;
      if (m.authority.issuerKey !== this.#opts.authority.issuerKey || m.authority.fingerprint !== this.#opts.authority.fingerprint) {
        throw new ManifestError("MANIFEST_WRONG_AUTHORITY", `${e.file}: manifest ${m.id} was issued by ${m.authority.issuerKey}, expected ${this.#opts.authority.issuerKey}`, {
          file: e.file,
          id: m.id,
        });
      }
      const sameId = this.#byId.get(m.id);
      if (sameId) throw duplicateError(e.file, m, sameId.file, "id");
      const sameHash = this.#byHash.get(m.tokenSha256);
      if (sameHash) throw duplicateError(e.file, m, sameHash.file, "tokenSha256");
      const entry: KeyringEntry = deepFreeze({ file: e.file, manifest: structuredClone(m) });
      this.#byId.set(m.id, entry);
      this.#byHash.set(m.tokenSha256, entry);
      list.push(entry);
    }
    this.#entries = Object.freeze(list);
  }

  /** Verifies each file (verifyManifestFile) and builds a keyring; throws the first error. */
  static async fromFiles(paths: readonly string[], opts: KeyringOptions, cache?: UserKeyCache): Promise<Keyring> {
    const manifests = await Promise.all(paths.map((p) => verifyManifestFile(p, opts, p)));
    return new Keyring(
      manifests.map((manifest, i) => ({ file: paths[i]!, manifest })),
      opts,
      cache,
    );
  }

  get size(): number {
    return this.#entries.length;
  }

  entries(): readonly KeyringEntry[] {
    return this.#entries;
  }

  get(id: string): KeyringEntry | undefined {
    return this.#byId.get(id);
  }

  /** The cache this snapshot unwraps into (shared with the snapshots built after it). */
  get cache(): UserKeyCache {
    return this.#cache;
  }

  /** The entry holding this token's hash, confirmed in constant time; undefined if none. */
  lookup(token: string): KeyringEntry | undefined {
    if (!isTokenShaped(token)) return undefined;
    // = tokenSha256Hex(token), through OpenSSL: this runs on every request.
    const h = createHash("sha256").update(token, "utf8").digest("hex");
    const e = this.#byHash.get(h);
    if (!e) return undefined;
    const a = Buffer.from(h, "hex");
    const b = Buffer.from(e.manifest.tokenSha256, "hex");
    return a.length === b.length && timingSafeEqual(a, b) ? e : undefined;
  }

  /**
   * Authenticates an API token at `now`: hash lookup, validity window (checked on every call,
   * cached or not), then the user key, unwrapped once per manifest and token and cached. Never
   * throws: every failure is a denial with a reason.
   */
  async authenticate(token: string, now: Instant): Promise<AuthResult> {
    const deny = (reason: AuthFailureReason, code: string, message: string, e?: KeyringEntry): AuthResult => ({
      ok: false,
      reason,
      code,
      message,
      ...(e ? { id: e.manifest.id, file: e.file } : {}),
    });
    try {
      if (typeof token !== "string" || !isTokenShaped(token)) {
        return deny("malformed_token", "MANIFEST_WRONG_TOKEN", "not a secneuron API token (expected sn_ followed by 43 base64url characters)");
      }
      const e = this.lookup(token);
      if (!e) return deny("unknown_token", "MANIFEST_WRONG_TOKEN", "no manifest in force holds this token");
      const m = e.manifest;
      const t = ms(now);
      if (!Number.isFinite(t)) return deny("expired", "MANIFEST_INVALID_INPUT", "invalid time value", e);
      if (t < Date.parse(m.notBefore)) return deny("not_yet_valid", "MANIFEST_NOT_YET_VALID", `manifest ${m.id} is not valid before ${m.notBefore}`, e);
      if (m.expires !== undefined && t >= Date.parse(m.expires)) return deny("expired", "MANIFEST_EXPIRED", `manifest ${m.id} expired at ${m.expires}`, e);
      let userKey: UserKey;
      try {
        userKey = await this.#cache.get(m, token, {
          now: t,
          expectedIssuer: this.#opts.authority.issuerKey,
          expectedFingerprint: this.#opts.authority.fingerprint,
          allowWeakKdf: this.#opts.allowWeakKdf,
        });
      } catch (err) {
        const se = err instanceof SecNeuronError ? err : undefined;
        // The window is re-checked inside openManifestAsync: report those as such.
        if (se?.code === "MANIFEST_EXPIRED") return deny("expired", se.code, se.message, e);
        if (se?.code === "MANIFEST_NOT_YET_VALID") return deny("not_yet_valid", se.code, se.message, e);
        return deny("unwrap_failed", se?.code ?? "MANIFEST_UNWRAP_FAILED", `manifest ${m.id}: ${se?.message ?? "user key unwrap failed"}`, e);
      }
      return { ok: true, manifest: m, file: e.file, userKey };
    } catch (err) {
      return deny("unwrap_failed", "MANIFEST_UNWRAP_FAILED", `authentication failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }
}
