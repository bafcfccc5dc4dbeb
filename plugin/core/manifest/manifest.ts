/**
 * Key manifests: issue (keygen, wrap, sign), parse (JSON, schema, canonical form) and open
 * (signature, authority, KDF floor, validity window, token, unwrap). Pure: the caller passes
 * `now` and, when issuing, randomness. Format: docs/manifest-format.md.
 *
 * Error codes (all ManifestError), in the order {@link openManifest} checks them:
 *   MANIFEST_PARSE               not UTF-8 or not JSON (details: offset)
 *   MANIFEST_UNSUPPORTED_VERSION format/version other than this build reads
 *   MANIFEST_SCHEMA              schema violation (details: path, pointer, keyword, violations)
 *   MANIFEST_NOT_CANONICAL       valid JSON but not byte-identical to its canonical file form
 *   MANIFEST_BAD_SIGNATURE       signature does not verify under the embedded issuer key
 *   MANIFEST_WRONG_AUTHORITY     issuer key or fingerprint differs from the expected one
 *   MANIFEST_WEAK_KDF            KDF cost below MIN_KDF_LOG_N without `allowWeakKdf`
 *   MANIFEST_NOT_YET_VALID       now < notBefore
 *   MANIFEST_EXPIRED             now >= expires
 *   MANIFEST_WRONG_TOKEN         token malformed or its SHA-256 differs from tokenSha256
 *   MANIFEST_UNWRAP_FAILED       AEAD authentication or user key decoding failed
 *   MANIFEST_KEY_MISMATCH        unwrapped key's fingerprint or attributes differ from the manifest
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { randomBytes as nobleRandomBytes } from "@noble/hashes/utils.js";
import { ManifestError, SecNeuronError } from "../../errors.js";
import {
  decodeUserKey,
  encodeUserKey,
  fingerprintHex,
  keygen,
  type MasterKey,
  type PublicParams,
  type RandomBytes,
  type UserKey,
} from "../abe/fame.js";
import { canonicalFileText, signingBytes } from "./canonical.js";
import { assertManifestShape, MANIFEST_FORMAT, MANIFEST_VERSION, MIN_KDF_LOG_N, SCHEMA_MIN_KDF_LOG_N, MAX_KDF_LOG_N } from "./schema.js";
import { bytesToHex, equalHexCt, generateToken, hexToBytes, isTokenShaped, tokenSha256Hex } from "./token.js";
import { DEFAULT_KDF_LOG_N, unwrapUserKey, unwrapUserKeyAsync, wrapUserKey, type WrappedUserKey } from "./user-key-wrap.js";

/** A key manifest, format version 1 (manifests/manifest.schema.json). */
export interface KeyManifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  id: string;
  subject: string;
  attributes: string[];
  models?: string[];
  issuedAt: string;
  notBefore: string;
  expires?: string;
  authority: { fingerprint: string; issuerKey: string };
  tokenSha256: string;
  userKey: WrappedUserKey;
  signature: string;
}

export type Instant = Date | number;

function ms(t: Instant): number {
  const v = typeof t === "number" ? t : t.getTime();
  if (!Number.isFinite(v)) throw new ManifestError("MANIFEST_INVALID_INPUT", "invalid time value", {});
  return v;
}

/** Seconds-precision UTC timestamp (milliseconds truncated): 2025-01-31T12:00:00Z. */
export function formatTimestamp(t: Instant): string {
  return new Date(Math.floor(ms(t) / 1000) * 1000).toISOString().replace(/\.000Z$/, "Z");
}

// ---------------------------------------------------------------------------------------------
// Issue

export interface IssueManifestInput {
  publicParams: PublicParams;
  masterKey: MasterKey;
  /** 32-byte ed25519 secret key of the issuer. */
  issuerSecretKey: Uint8Array;
  subject: string;
  attributes: readonly string[];
  /** Model names and/or `sha256:<hex>` digests; absent or empty: every model. */
  models?: readonly string[];
  /** Default: `now`. */
  notBefore?: Instant;
  /** Absent: never expires. */
  expires?: Instant;
  /** scrypt cost N = 2^kdfLogN. Default {@link DEFAULT_KDF_LOG_N}; below MIN_KDF_LOG_N needs allowWeakKdf. */
  kdfLogN?: number;
  /** Tests only: admit kdfLogN down to SCHEMA_MIN_KDF_LOG_N. Recorded in the manifest as its logN. */
  allowWeakKdf?: boolean;
}

export interface IssuedManifest {
  manifest: KeyManifest;
  /** The file form (canonicalFileText). */
  text: string;
  /** The API token: shown once, never stored. */
  token: string;
}

function assertKdfLogN(logN: number, allowWeak: boolean | undefined): void {
  const min = allowWeak ? SCHEMA_MIN_KDF_LOG_N : MIN_KDF_LOG_N;
  if (!Number.isInteger(logN) || logN < min || logN > MAX_KDF_LOG_N) {
    throw new ManifestError("MANIFEST_WEAK_KDF", `kdf logN must be an integer in ${min}..${MAX_KDF_LOG_N}, got ${logN}`, { logN, min, max: MAX_KDF_LOG_N });
  }
}

/**
 * Issues a manifest: a fresh token and id, a CP-ABE user key for `attributes`, wrapped under the
 * token and signed by the issuer. The token is returned, never stored in the manifest.
 */
export function issueManifest(input: IssueManifestInput, deps: { now: Instant; randomBytes?: RandomBytes }): IssuedManifest {
  const rng = deps.randomBytes ?? nobleRandomBytes;
  const logN = input.kdfLogN ?? DEFAULT_KDF_LOG_N;
  assertKdfLogN(logN, input.allowWeakKdf);
  if (input.issuerSecretKey.length !== 32) {
    throw new ManifestError("MANIFEST_INVALID_INPUT", `issuer secret key must be 32 bytes, got ${input.issuerSecretKey.length}`, {});
  }
  const attributes = [...new Set(input.attributes)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const models = input.models && input.models.length ? [...new Set(input.models)].sort() : undefined;
  const token = generateToken(rng);
  const tokenSha256 = tokenSha256Hex(token);
  const id = bytesToHex(rng(16));
  const issuedAt = formatTimestamp(deps.now);
  const base: Omit<KeyManifest, "userKey" | "signature"> = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    id,
    subject: input.subject,
    attributes,
    ...(models ? { models } : {}),
    issuedAt,
    notBefore: formatTimestamp(input.notBefore ?? deps.now),
    ...(input.expires !== undefined ? { expires: formatTimestamp(input.expires) } : {}),
    authority: { fingerprint: fingerprintHex(input.publicParams), issuerKey: bytesToHex(ed25519.getPublicKey(input.issuerSecretKey)) },
    tokenSha256,
  };
  // Validate everything but the wrapped key and signature before the expensive part.
  const placeholder: KeyManifest = {
    ...base,
    userKey: { kdf: { name: "scrypt", logN, r: 8, p: 1, salt: "0".repeat(32) }, aead: { name: "aes-256-gcm", nonce: "0".repeat(24) }, ciphertext: "A".repeat(24) },
    signature: "0".repeat(128),
  };
  assertManifestShape(placeholder);

  const userKey = keygen(input.publicParams, input.masterKey, attributes, rng);
  const ukBytes = encodeUserKey(userKey);
  const wrapped = wrapUserKey(ukBytes, token, { id, subject: input.subject, tokenSha256 }, { logN, randomBytes: rng });
  ukBytes.fill(0);
  const manifest = signManifest({ ...base, userKey: wrapped }, input.issuerSecretKey);
  assertManifestShape(manifest);
  return { manifest, text: canonicalFileText(manifest), token };
}

/** Signs (or re-signs) a manifest: sets `signature` over {@link signingBytes}. */
export function signManifest(unsigned: Omit<KeyManifest, "signature"> & { signature?: string }, issuerSecretKey: Uint8Array): KeyManifest {
  const sig = ed25519.sign(signingBytes(unsigned), issuerSecretKey);
  return { ...(unsigned as Omit<KeyManifest, "signature">), signature: bytesToHex(sig) };
}

/** True if the signature verifies under the manifest's own issuer key (strict RFC 8032). */
export function verifyManifestSignature(manifest: KeyManifest): boolean {
  const sig = hexToBytes(manifest.signature);
  const pub = hexToBytes(manifest.authority.issuerKey);
  if (!sig || !pub || sig.length !== 64 || pub.length !== 32) return false;
  try {
    return ed25519.verify(sig, signingBytes(manifest), pub, { zip215: false });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Parse

function parseError(message: string, details: Record<string, unknown>): ManifestError {
  return new ManifestError("MANIFEST_PARSE", message, details);
}

/**
 * Parses manifest file contents: UTF-8, JSON, version, schema, canonical file form. Does not
 * check the signature. A parsed object (not text) skips the canonical-form check.
 */
export function parseManifest(input: string | Uint8Array | object): KeyManifest {
  let text: string | undefined;
  let value: unknown;
  if (input instanceof Uint8Array) {
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw parseError("not valid UTF-8", {});
    }
  } else if (typeof input === "string") {
    text = input;
  } else {
    value = input;
  }
  if (text !== undefined) {
    try {
      value = JSON.parse(text);
    } catch (e) {
      const m = /position (\d+)/.exec((e as Error).message);
      const offset = m ? Number(m[1]) : undefined;
      let where = "";
      if (offset !== undefined) {
        const before = text.slice(0, offset);
        const line = before.split("\n").length;
        where = ` at line ${line}, column ${offset - before.lastIndexOf("\n")}`;
      }
      throw parseError(`not valid JSON${where}: ${(e as Error).message}`, { offset });
    }
  }
  assertManifestShape(value);
  if (text !== undefined) {
    const canonical = canonicalFileText(value);
    if (text !== canonical) {
      let i = 0;
      while (i < text.length && text[i] === canonical[i]) i++;
      throw new ManifestError(
        "MANIFEST_NOT_CANONICAL",
        `manifest text differs from its canonical form at character ${i} (a signed manifest must not be edited or reformatted; sorted keys, 2-space indent, one trailing newline)`,
        { offset: i },
      );
    }
  }
  return value as KeyManifest;
}

// ---------------------------------------------------------------------------------------------
// Open

export interface OpenManifestOptions {
  /** The instant the validity window is checked at. */
  now: Instant;
  /** The API token: checked against tokenSha256, then used to unwrap the user key. */
  token?: string;
  /** Expected issuer ed25519 public key (hex or 32 bytes). */
  expectedIssuer?: string | Uint8Array;
  /** Expected authority fingerprint: SHA-256 of the CP-ABE public params (hex or 32 bytes). */
  expectedFingerprint?: string | Uint8Array;
  /** Tests only: accept a KDF cost below MIN_KDF_LOG_N. */
  allowWeakKdf?: boolean;
}

export interface OpenedManifest {
  manifest: KeyManifest;
  /** Present when a token was given: the unwrapped, checked CP-ABE user key. */
  userKey?: UserKey;
  /** False when neither expectedIssuer nor expectedFingerprint was given (self-signed only). */
  authorityChecked: boolean;
}

function asHex(v: string | Uint8Array): string {
  return typeof v === "string" ? v.toLowerCase() : bytesToHex(v);
}

/** Every check that needs no token. Returns the parsed manifest. */
function checkWithoutToken(input: string | Uint8Array | object, opts: OpenManifestOptions): KeyManifest {
  const m = parseManifest(input);
  if (!verifyManifestSignature(m)) {
    throw new ManifestError("MANIFEST_BAD_SIGNATURE", `$.signature: does not verify under issuer key ${m.authority.issuerKey} (the manifest was altered or not signed by that key)`, {
      path: "$.signature",
      id: m.id,
    });
  }
  const wrongAuthority = (field: "issuerKey" | "fingerprint", expected: string, found: string) =>
    new ManifestError("MANIFEST_WRONG_AUTHORITY", `$.authority.${field}: manifest was issued by ${found}, expected ${expected}`, {
      path: `$.authority.${field}`,
      expected,
      found,
      id: m.id,
    });
  if (opts.expectedIssuer !== undefined && !equalHexCt(asHex(opts.expectedIssuer), m.authority.issuerKey)) {
    throw wrongAuthority("issuerKey", asHex(opts.expectedIssuer), m.authority.issuerKey);
  }
  if (opts.expectedFingerprint !== undefined && !equalHexCt(asHex(opts.expectedFingerprint), m.authority.fingerprint)) {
    throw wrongAuthority("fingerprint", asHex(opts.expectedFingerprint), m.authority.fingerprint);
  }
  if (m.userKey.kdf.logN < MIN_KDF_LOG_N && !opts.allowWeakKdf) {
    throw new ManifestError("MANIFEST_WEAK_KDF", `$.userKey.kdf.logN: ${m.userKey.kdf.logN} is below the minimum ${MIN_KDF_LOG_N} (test-only cost)`, {
      path: "$.userKey.kdf.logN",
      found: m.userKey.kdf.logN,
      min: MIN_KDF_LOG_N,
    });
  }
  const now = ms(opts.now);
  if (now < Date.parse(m.notBefore)) {
    throw new ManifestError("MANIFEST_NOT_YET_VALID", `$.notBefore: manifest ${m.id} is not valid before ${m.notBefore} (now ${formatTimestamp(now)})`, {
      path: "$.notBefore",
      notBefore: m.notBefore,
      now: new Date(now).toISOString(),
      id: m.id,
    });
  }
  if (m.expires !== undefined && now >= Date.parse(m.expires)) {
    throw new ManifestError("MANIFEST_EXPIRED", `$.expires: manifest ${m.id} expired at ${m.expires} (now ${formatTimestamp(now)})`, {
      path: "$.expires",
      expires: m.expires,
      now: new Date(now).toISOString(),
      id: m.id,
    });
  }
  return m;
}

function checkToken(m: KeyManifest, token: string): void {
  if (!isTokenShaped(token)) {
    throw new ManifestError("MANIFEST_WRONG_TOKEN", "token is not a secneuron API token (expected sn_ followed by 43 base64url characters)", { id: m.id });
  }
  if (!equalHexCt(tokenSha256Hex(token), m.tokenSha256)) {
    throw new ManifestError("MANIFEST_WRONG_TOKEN", `$.tokenSha256: the token does not belong to manifest ${m.id}`, { path: "$.tokenSha256", id: m.id });
  }
}

function finishUnwrap(m: KeyManifest, ukBytes: Uint8Array): UserKey {
  let uk: UserKey;
  try {
    uk = decodeUserKey(ukBytes);
  } catch (e) {
    throw new ManifestError("MANIFEST_UNWRAP_FAILED", `$.userKey: unwrapped bytes are not a valid CP-ABE user key: ${(e as Error).message}`, {
      path: "$.userKey",
      cause: e instanceof SecNeuronError ? e.code : undefined,
    });
  } finally {
    ukBytes.fill(0);
  }
  if (fingerprintHex(uk) !== m.authority.fingerprint) {
    throw new ManifestError("MANIFEST_KEY_MISMATCH", `$.authority.fingerprint: the user key belongs to authority ${fingerprintHex(uk)}, the manifest names ${m.authority.fingerprint}`, {
      path: "$.authority.fingerprint",
    });
  }
  if (uk.attributes.length !== m.attributes.length || uk.attributes.some((a, i) => a !== m.attributes[i])) {
    throw new ManifestError("MANIFEST_KEY_MISMATCH", `$.attributes: the user key holds [${uk.attributes.join(", ")}], the manifest lists [${m.attributes.join(", ")}]`, {
      path: "$.attributes",
      keyAttributes: [...uk.attributes],
      manifestAttributes: m.attributes,
    });
  }
  return uk;
}

/**
 * Opens a manifest for use: parse, schema, canonical form, signature, expected authority, KDF
 * floor, validity window at `now`; with a token, also the token hash, unwrap and key checks.
 * Synchronous (the KDF blocks ~0.3 s at the default cost); see {@link openManifestAsync}.
 */
export function openManifest(input: string | Uint8Array | object, opts: OpenManifestOptions): OpenedManifest {
  const manifest = checkWithoutToken(input, opts);
  const authorityChecked = opts.expectedIssuer !== undefined || opts.expectedFingerprint !== undefined;
  if (opts.token === undefined) return { manifest, authorityChecked };
  checkToken(manifest, opts.token);
  const bytes = unwrapUserKey(manifest.userKey, opts.token, manifest);
  return { manifest, userKey: finishUnwrap(manifest, bytes), authorityChecked };
}

/** As {@link openManifest}, but the KDF yields to the event loop (for the sidecar). */
export async function openManifestAsync(input: string | Uint8Array | object, opts: OpenManifestOptions): Promise<OpenedManifest> {
  const manifest = checkWithoutToken(input, opts);
  const authorityChecked = opts.expectedIssuer !== undefined || opts.expectedFingerprint !== undefined;
  if (opts.token === undefined) return { manifest, authorityChecked };
  checkToken(manifest, opts.token);
  const bytes = await unwrapUserKeyAsync(manifest.userKey, opts.token, manifest);
  return { manifest, userKey: finishUnwrap(manifest, bytes), authorityChecked };
}
