/**
 * The authority directory: CP-ABE master key and public parameters, ed25519 issuer key pair.
 *
 *   <dir>/                  0700
 *     abe-public-params.bin 0600  encodePublicParams (public; SHA-256 = the authority fingerprint)
 *     abe-master-key.bin    0600  encodeMasterKey (SECRET)
 *     issuer-ed25519.key    0600  32-byte ed25519 secret key, raw (SECRET)
 *     authority.json        0600  summary: format, version, fingerprint, issuerKey, createdAt
 *
 * `authority.json` is written last, so a directory without it is an unfinished init. Every file
 * is written atomically (temp file + rename).
 */
import { existsSync, mkdirSync, readFileSync, statSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { ManifestError, SecNeuronError } from "../errors.js";
import {
  decodeMasterKey,
  decodePublicParams,
  encodeMasterKey,
  encodePublicParams,
  fingerprintHex,
  setup,
  shortFingerprint,
  type MasterKey,
  type PublicParams,
  type RandomBytes,
} from "../core/abe/fame.js";
import { bytesToHex, equalBytesCt } from "../core/manifest/token.js";
import { formatTimestamp } from "../core/manifest/manifest.js";
import { writeFileAtomic } from "./manifests/atomic-write.js";

export const AUTHORITY_FORMAT = "secneuron-authority";
export const AUTHORITY_VERSION = 1;

export const AUTHORITY_FILES = {
  publicParams: "abe-public-params.bin",
  masterKey: "abe-master-key.bin",
  issuerSecretKey: "issuer-ed25519.key",
  summary: "authority.json",
} as const;

const SECRET_FILES = [AUTHORITY_FILES.masterKey, AUTHORITY_FILES.issuerSecretKey];

/** The public part of an authority: enough to verify manifests. */
export interface AuthorityPublic {
  dir: string;
  /** Hex SHA-256 of the encoded public params. */
  fingerprint: string;
  /** "fame:" + 16 hex digits. */
  shortFingerprint: string;
  /** Hex ed25519 public key of the issuer. */
  issuerKey: string;
  publicParams: PublicParams;
  createdAt: string;
  /** Permission problems found (group/other access to the directory or secret files). */
  warnings: string[];
}

/** A loaded authority, secrets included. */
export interface Authority extends AuthorityPublic {
  masterKey: MasterKey;
  issuerSecretKey: Uint8Array;
}

interface Summary {
  format: string;
  version: number;
  fingerprint: string;
  issuerKey: string;
  createdAt: string;
}

function fail(code: string, message: string, details: Record<string, unknown>): ManifestError {
  return new ManifestError(code, message, details);
}

function readAuthorityFile(dir: string, name: string): Buffer {
  const path = join(dir, name);
  try {
    return readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") {
      if (!existsSync(dir)) throw fail("AUTHORITY_NOT_FOUND", `${dir}: no such authority directory (run 'secneuron authority init ${dir}')`, { dir });
      throw fail("AUTHORITY_FILE_MISSING", `${path}: missing (the authority directory is incomplete)`, { dir, file: name });
    }
    throw fail("AUTHORITY_READ_FAILED", `${path}: cannot read: ${err.message}`, { dir, file: name, errno: err.code });
  }
}

function corrupt(dir: string, file: string, reason: string): ManifestError {
  return fail("AUTHORITY_CORRUPT", `${join(dir, file)}: ${reason}`, { dir, file, reason });
}

function permissionWarnings(dir: string, files: readonly string[]): string[] {
  const out: string[] = [];
  const check = (path: string) => {
    try {
      const mode = statSync(path).mode & 0o777;
      if (mode & 0o077) out.push(`${path} is accessible by group/others (mode ${mode.toString(8).padStart(4, "0")}); run chmod go-rwx`);
    } catch {
      // Missing files are reported by the read itself.
    }
  };
  check(dir);
  for (const f of files) check(join(dir, f));
  return out;
}

function readSummary(dir: string): Summary {
  const raw = readAuthorityFile(dir, AUTHORITY_FILES.summary);
  let v: unknown;
  try {
    v = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw corrupt(dir, AUTHORITY_FILES.summary, `not valid JSON: ${(e as Error).message}`);
  }
  const s = v as Partial<Summary>;
  if (typeof v !== "object" || v === null || s.format !== AUTHORITY_FORMAT) throw corrupt(dir, AUTHORITY_FILES.summary, `not a ${AUTHORITY_FORMAT} file`);
  if (s.version !== AUTHORITY_VERSION) throw corrupt(dir, AUTHORITY_FILES.summary, `unsupported version ${JSON.stringify(s.version)}`);
  for (const f of ["fingerprint", "issuerKey"] as const) {
    if (typeof s[f] !== "string" || !/^[0-9a-f]{64}$/.test(s[f]!)) throw corrupt(dir, AUTHORITY_FILES.summary, `${f} must be 64 lowercase hex digits`);
  }
  if (typeof s.createdAt !== "string") throw corrupt(dir, AUTHORITY_FILES.summary, "createdAt missing");
  return s as Summary;
}

function decodeWith<T>(dir: string, file: string, bytes: Uint8Array, decode: (b: Uint8Array) => T): T {
  try {
    return decode(bytes);
  } catch (e) {
    const why = e instanceof SecNeuronError ? `${e.code}: ${e.message}` : (e as Error).message;
    throw corrupt(dir, file, `cannot decode: ${why}`);
  }
}

/** Loads and cross-checks the public part (summary + public params); no secret file is read. */
export function loadAuthorityPublic(dir: string): AuthorityPublic {
  const summary = readSummary(dir);
  const publicParams = decodeWith(dir, AUTHORITY_FILES.publicParams, readAuthorityFile(dir, AUTHORITY_FILES.publicParams), decodePublicParams);
  if (fingerprintHex(publicParams) !== summary.fingerprint) {
    throw corrupt(dir, AUTHORITY_FILES.summary, `fingerprint ${summary.fingerprint} does not match ${AUTHORITY_FILES.publicParams} (${fingerprintHex(publicParams)})`);
  }
  return {
    dir,
    fingerprint: summary.fingerprint,
    shortFingerprint: shortFingerprint(publicParams),
    issuerKey: summary.issuerKey,
    publicParams,
    createdAt: summary.createdAt,
    warnings: permissionWarnings(dir, []),
  };
}

/**
 * Loads an authority with its secrets and checks that the pieces belong together: the master key
 * reproduces the public params, the issuer secret key gives the recorded public key.
 * Errors: AUTHORITY_NOT_FOUND, AUTHORITY_FILE_MISSING, AUTHORITY_READ_FAILED, AUTHORITY_CORRUPT.
 * Loose permissions are returned as `warnings`, not errors.
 */
export function loadAuthority(dir: string): Authority {
  const pub = loadAuthorityPublic(dir);
  const masterKey = decodeWith(dir, AUTHORITY_FILES.masterKey, readAuthorityFile(dir, AUTHORITY_FILES.masterKey), decodeMasterKey);
  if (!equalBytesCt(masterKey.fingerprint, pub.publicParams.fingerprint)) {
    throw corrupt(dir, AUTHORITY_FILES.masterKey, "master key belongs to another authority than the public params");
  }
  const sk = readAuthorityFile(dir, AUTHORITY_FILES.issuerSecretKey);
  if (sk.length !== 32) throw corrupt(dir, AUTHORITY_FILES.issuerSecretKey, `expected 32 bytes, found ${sk.length}`);
  const issuerSecretKey = new Uint8Array(sk);
  sk.fill(0);
  if (bytesToHex(ed25519.getPublicKey(issuerSecretKey)) !== pub.issuerKey) {
    issuerSecretKey.fill(0);
    throw corrupt(dir, AUTHORITY_FILES.issuerSecretKey, `does not match issuerKey ${pub.issuerKey} in ${AUTHORITY_FILES.summary}`);
  }
  return { ...pub, masterKey, issuerSecretKey, warnings: permissionWarnings(dir, SECRET_FILES) };
}

export interface InitAuthorityOptions {
  /** Replace an existing authority (its manifests stop verifying). */
  force?: boolean;
  now: Date | number;
  randomBytes?: RandomBytes;
}

/** True if `dir` holds any authority file. */
export function authorityExists(dir: string): boolean {
  return Object.values(AUTHORITY_FILES).some((f) => existsSync(join(dir, f)));
}

/**
 * Creates an authority in `dir` (created 0700 if missing): CP-ABE setup and an ed25519 issuer key.
 * Refuses (AUTHORITY_EXISTS) when `dir` already holds authority files, unless `force`.
 */
export function initAuthority(dir: string, opts: InitAuthorityOptions): AuthorityPublic {
  if (!opts.force && authorityExists(dir)) {
    throw fail("AUTHORITY_EXISTS", `${dir} already holds an authority; use --force to replace it (manifests it issued will stop verifying)`, { dir });
  }
  const created = !existsSync(dir);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (created) chmodSync(dir, 0o700);
  } catch (e) {
    throw fail("AUTHORITY_WRITE_FAILED", `${dir}: cannot create directory: ${(e as Error).message}`, { dir });
  }
  if (!statSync(dir).isDirectory()) throw fail("AUTHORITY_WRITE_FAILED", `${dir}: not a directory`, { dir });

  const { publicParams, masterKey } = setup(opts.randomBytes);
  const issuerSecretKey = opts.randomBytes ? ed25519.utils.randomSecretKey(opts.randomBytes(32)) : ed25519.utils.randomSecretKey();
  const issuerKey = bytesToHex(ed25519.getPublicKey(issuerSecretKey));
  const fingerprint = fingerprintHex(publicParams);
  const summary: Summary = { format: AUTHORITY_FORMAT, version: AUTHORITY_VERSION, fingerprint, issuerKey, createdAt: formatTimestamp(opts.now) };
  const mkBytes = encodeMasterKey(masterKey);
  try {
    writeFileAtomic(join(dir, AUTHORITY_FILES.masterKey), mkBytes, 0o600);
    writeFileAtomic(join(dir, AUTHORITY_FILES.issuerSecretKey), issuerSecretKey, 0o600);
    writeFileAtomic(join(dir, AUTHORITY_FILES.publicParams), encodePublicParams(publicParams), 0o600);
    writeFileAtomic(join(dir, AUTHORITY_FILES.summary), `${JSON.stringify(summary, null, 2)}\n`, 0o600);
  } catch (e) {
    throw fail("AUTHORITY_WRITE_FAILED", `${dir}: cannot write authority files: ${(e as Error).message}`, { dir });
  } finally {
    mkBytes.fill(0);
    issuerSecretKey.fill(0);
  }
  return {
    dir,
    fingerprint,
    shortFingerprint: shortFingerprint(publicParams),
    issuerKey,
    publicParams,
    createdAt: summary.createdAt,
    warnings: permissionWarnings(dir, SECRET_FILES),
  };
}
