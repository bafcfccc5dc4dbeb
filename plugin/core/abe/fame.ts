/**
 * FAME (Agrawal & Chase, "FAME: Fast Attribute-based Message Encryption", CCS 2017), the
 * ciphertext-policy scheme of section 3 with k = 2 (DLIN), as charm-crypto's `ac17.py`, in KEM
 * form. Written once over {@link PairingGroup}; {@link fame} is the BLS12-381 instance.
 *
 * Notation (additive in G1/G2, [x]_1 = x*g, [x]_2 = x*h, g/h the standard generators):
 *   msk: a1, a2, b1, b2, k1, k2, k3 in Z_p^*.
 *   pk : H1 = [a1]_2, H2 = [a2]_2, T_t = e(g,h)^(k_t a_t + k3) for t = 1,2.
 *   H(y, l, t) = hash of attribute y to G1, H(col j, l, t) = hash of LSSS column j to G1
 *   (l in 1..3, t in 1..2; separate domains, see {@link hashInput}).
 *   keygen(S): r1, r2 random; Br = (b1 r1, b2 r2, r1 + r2); sk0 = [Br]_2 (3 x G2).
 *     for y in S, sigma_y random: sk_y,t = sum_l (Br_l / a_t) H(y,l,t) + (sigma_y / a_t) g,
 *       sk_y,3 = -sigma_y g;
 *     sigma' random: sk'_t = k_t g + sum_l (Br_l / a_t) H(col 0,l,t) + (sigma' / a_t) g,
 *       sk'_3 = (k3 - sigma') g.
 *   encrypt(M, pi): s1, s2 random; ct0 = (s1 H1, s2 H2, (s1 + s2) h);
 *     ct_i,l = sum_t s_t (H(pi(i),l,t) + sum_j M_ij H(col j,l,t));  Z = T1^s1 T2^s2.
 *   decrypt with reconstruction coefficients gamma_i (sum gamma_i M_i = (1,0,...,0)):
 *     A_l = sk'_l + sum gamma_i sk_pi(i),l ;  B_l = sum gamma_i ct_i,l
 *     Z = prod_l e(A_l, ct0_l) / prod_l e(B_l, sk0_l)    (one 6-pairing product)
 * KEM: key = HKDF-SHA256(ikm = bytes(Z), salt = "", info = KEM_INFO, 32 bytes). A confirmation
 * tag HMAC-SHA256(HKDF(..., CONFIRM_INFO), ciphertext body) lets decryption report a wrong
 * result (forged or tampered ciphertext, pooled keys) as a CryptoError instead of a wrong key.
 *
 * Pure: randomness comes from the `randomBytes` argument (default: noble's CSPRNG).
 */
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes as nobleRandomBytes } from "@noble/hashes/utils.js";
import { CryptoError, PolicyError } from "../../errors.js";
import { bls12_381Group, type PairingGroup, type Bls12381G1, type Bls12381G2, type Bls12381GT } from "./group.js";
import {
  assertAttribute,
  compileLsss,
  findReconstruction,
  MAX_KEY_ATTRIBUTES,
  parsePolicy,
  printPolicy,
  type Lsss,
  type PolicyNode,
} from "./policy.js";
import { createFameCodec, type FameCodec } from "./serialize.js";

/** Source of uniformly random bytes. */
export type RandomBytes = (length: number) => Uint8Array;


export const KEM_INFO = "secneuron/cp-abe/fame-v1/kem";
export const CONFIRM_INFO = "secneuron/cp-abe/fame-v1/confirm";
/** Domain-separation prefix of the hash to G1 (the RFC 9380 suite id is appended). */
export const DST_PREFIX = "SECNEURON-FAME-V1-";

type Triple<P> = readonly [P, P, P];

export interface FamePublicParams<G2, GT> {
  /** [a1]_2, [a2]_2. */
  readonly h: readonly [G2, G2];
  /** e(g,h)^(k1 a1 + k3), e(g,h)^(k2 a2 + k3). */
  readonly t: readonly [GT, GT];
  /** SHA-256 of the encoded public parameters: names the authority. */
  readonly fingerprint: Uint8Array;
}

export interface FameMasterKey {
  readonly a: readonly [bigint, bigint];
  readonly b: readonly [bigint, bigint];
  readonly k: readonly [bigint, bigint, bigint];
  /** Fingerprint of the matching public parameters. */
  readonly fingerprint: Uint8Array;
}

export interface FameUserKey<G1, G2> {
  readonly fingerprint: Uint8Array;
  /** Sorted ascending, unique. */
  readonly attributes: readonly string[];
  readonly sk0: Triple<G2>;
  readonly skPrime: Triple<G1>;
  /** Per attribute, same order as `attributes`. */
  readonly skAttr: ReadonlyMap<string, Triple<G1>>;
}

export interface FameCiphertext<G1, G2> {
  readonly fingerprint: Uint8Array;
  /** Canonical policy text (see policy.ts). */
  readonly policy: string;
  readonly ct0: Triple<G2>;
  /** One triple per LSSS row, in row order. */
  readonly rows: readonly Triple<G1>[];
  /** HMAC-SHA256 confirmation tag over the ciphertext body. */
  readonly tag: Uint8Array;
}

export interface FameEncapsulation<G1, G2> {
  readonly ciphertext: FameCiphertext<G1, G2>;
  /** The encapsulated 256-bit key. */
  readonly key: Uint8Array;
}

export interface Fame<G1, G2, GT> {
  readonly group: PairingGroup<G1, G2, GT>;
  readonly codec: FameCodec<G1, G2, GT>;
  setup(randomBytes?: RandomBytes): { publicParams: FamePublicParams<G2, GT>; masterKey: FameMasterKey };
  /** Recomputes the public parameters from a master key (used to check decoded master keys). */
  publicParamsFromMaster(mk: Omit<FameMasterKey, "fingerprint">): FamePublicParams<G2, GT>;
  keygen(
    publicParams: FamePublicParams<G2, GT>,
    masterKey: FameMasterKey,
    attributes: Iterable<string>,
    randomBytes?: RandomBytes,
  ): FameUserKey<G1, G2>;
  encrypt(
    publicParams: FamePublicParams<G2, GT>,
    policy: string | PolicyNode,
    randomBytes?: RandomBytes,
  ): FameEncapsulation<G1, G2>;
  decrypt(userKey: FameUserKey<G1, G2>, ciphertext: FameCiphertext<G1, G2>): Uint8Array;
  /** Strict decode plus a check that the scalars reproduce the recorded public params. */
  decodeMasterKey(bytes: Uint8Array): FameMasterKey;
}

const enc = new TextEncoder();

/** Hash-to-G1 message: domain byte ('A' attribute, 'C' LSSS column), l, t, then the name/index. */
export function hashInput(domain: "A" | "C", l: number, t: number, id: string | number): Uint8Array {
  const tail = typeof id === "string" ? enc.encode(id) : u32be(id);
  const out = new Uint8Array(3 + tail.length);
  out[0] = domain.charCodeAt(0);
  out[1] = l;
  out[2] = t;
  out.set(tail, 3);
  return out;
}

function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, false);
  return b;
}

function bytesEqualCt(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export interface FameOptions {
  /**
   * Decryption uses the exact integer reconstruction coefficients (short scalars + one GT
   * exponentiation) when they and their denominator fit in this many bits, else the
   * coefficients mod p. Default 128. Both give the same key; tests set 0 to cover the fallback.
   */
  readonly shortCoefficientBits?: number;
}

/** Builds the scheme over a pairing group. */
export function createFame<G1, G2, GT>(group: PairingGroup<G1, G2, GT>, options: FameOptions = {}): Fame<G1, G2, GT> {
  const shortBits = options.shortCoefficientBits ?? 128;
  const p = group.order;
  const { g1, g2, gt } = group;
  const codec = createFameCodec(group);
  const dst = DST_PREFIX + group.hashToG1Suite;

  // Deterministic hash-to-G1 memo (public values), bounded.
  const hashCache = new Map<string, G1>();
  const H = (domain: "A" | "C", l: number, t: number, id: string | number): G1 => {
    const key = `${domain}|${l}|${t}|${id}`;
    let v = hashCache.get(key);
    if (v === undefined) {
      if (hashCache.size >= 8192) hashCache.clear();
      v = group.hashToG1(hashInput(domain, l, t, id), dst);
      hashCache.set(key, v);
    }
    return v;
  };

  let gtBaseMemo: GT | undefined;
  const gtBase = (): GT => (gtBaseMemo ??= group.pairingProduct([[g1.base, g2.base]]));

  const inv = (x: bigint): bigint => {
    // Fermat inversion mod prime p (x != 0).
    let r = 1n;
    let b = ((x % p) + p) % p;
    let e = p - 2n;
    while (e > 0n) {
      if (e & 1n) r = (r * b) % p;
      b = (b * b) % p;
      e >>= 1n;
    }
    return r;
  };

  const randomScalar = (rb: RandomBytes): bigint => {
    // 64 uniform bytes reduced into [1, p-1]: bias < 2^-250.
    const bytes = rb(64);
    if (!(bytes instanceof Uint8Array) || bytes.length !== 64) {
      throw new CryptoError("abe-rng", "randomBytes(64) did not return 64 bytes", {});
    }
    let x = 0n;
    for (const byte of bytes) x = (x << 8n) | BigInt(byte);
    return (x % (p - 1n)) + 1n;
  };

  const publicParamsFromMaster = (mk: Omit<FameMasterKey, "fingerprint">): FamePublicParams<G2, GT> => {
    const e = gtBase();
    const h: [G2, G2] = [g2.mul(g2.base, mk.a[0]), g2.mul(g2.base, mk.a[1])];
    const t: [GT, GT] = [
      gt.pow(e, (mk.k[0] * mk.a[0] + mk.k[2]) % p),
      gt.pow(e, (mk.k[1] * mk.a[1] + mk.k[2]) % p),
    ];
    const fingerprint = sha256(codec.encodePublicParamsRaw(h, t));
    return { h, t, fingerprint };
  };

  const setup: Fame<G1, G2, GT>["setup"] = (randomBytes = nobleRandomBytes) => {
    const a: [bigint, bigint] = [randomScalar(randomBytes), randomScalar(randomBytes)];
    const b: [bigint, bigint] = [randomScalar(randomBytes), randomScalar(randomBytes)];
    const k: [bigint, bigint, bigint] = [
      randomScalar(randomBytes),
      randomScalar(randomBytes),
      randomScalar(randomBytes),
    ];
    const publicParams = publicParamsFromMaster({ a, b, k });
    return { publicParams, masterKey: { a, b, k, fingerprint: publicParams.fingerprint } };
  };

  const keygen: Fame<G1, G2, GT>["keygen"] = (pp, mk, attributes, randomBytes = nobleRandomBytes) => {
    if (!bytesEqualCt(pp.fingerprint, mk.fingerprint)) {
      throw new CryptoError("abe-authority-mismatch", "master key does not belong to these public parameters", {});
    }
    const attrs = [...new Set(attributes)];
    for (const a of attrs) assertAttribute(a, "keygen");
    if (attrs.length > MAX_KEY_ATTRIBUTES) {
      throw new PolicyError("policy-too-large", `a user key holds at most ${MAX_KEY_ATTRIBUTES} attributes, got ${attrs.length}`, {
        limit: MAX_KEY_ATTRIBUTES,
      });
    }
    attrs.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const r1 = randomScalar(randomBytes);
    const r2 = randomScalar(randomBytes);
    const Br = [(mk.b[0] * r1) % p, (mk.b[1] * r2) % p, (r1 + r2) % p] as const;
    const sk0: Triple<G2> = [g2.mul(g2.base, Br[0]), g2.mul(g2.base, Br[1]), g2.mul(g2.base, Br[2])];
    const aInv = [inv(mk.a[0]), inv(mk.a[1])] as const;
    // Scalars Br_l / a_t, shared by every attribute.
    const coef = [0, 1].map((t) => Br.map((x) => (x * aInv[t]!) % p));
    const component = (domain: "A" | "C", id: string | number, sigma: bigint, extra: readonly [bigint, bigint, bigint]): Triple<G1> => {
      const out: G1[] = [];
      for (let t = 0; t < 2; t++) {
        let acc = g1.mul(g1.base, (extra[t]! + sigma * aInv[t]!) % p);
        for (let l = 0; l < 3; l++) acc = g1.add(acc, g1.mul(H(domain, l + 1, t + 1, id), coef[t]![l]!));
        out.push(acc);
      }
      out.push(g1.mul(g1.base, (((extra[2] - sigma) % p) + p) % p));
      return [out[0]!, out[1]!, out[2]!];
    };
    const skAttr = new Map<string, Triple<G1>>();
    for (const y of attrs) skAttr.set(y, component("A", y, randomScalar(randomBytes), [0n, 0n, 0n]));
    const skPrime = component("C", 0, randomScalar(randomBytes), mk.k);
    return { fingerprint: pp.fingerprint, attributes: attrs, sk0, skPrime, skAttr };
  };

  const deriveKeys = (z: GT): { key: Uint8Array; mac: Uint8Array } => {
    const ikm = gt.toBytes(z);
    const key = hkdf(sha256, ikm, undefined, enc.encode(KEM_INFO), 32);
    const mac = hkdf(sha256, ikm, undefined, enc.encode(CONFIRM_INFO), 32);
    ikm.fill(0);
    return { key, mac };
  };

  const lsssOf = (policy: string | PolicyNode): { node: PolicyNode; text: string; lsss: Lsss } => {
    const node = typeof policy === "string" ? parsePolicy(policy) : policy;
    const text = printPolicy(node);
    // Re-parse the canonical text: a hand-built PolicyNode gets the same checks as text.
    const canon = parsePolicy(text);
    return { node: canon, text, lsss: compileLsss(canon) };
  };

  const encrypt: Fame<G1, G2, GT>["encrypt"] = (pp, policy, randomBytes = nobleRandomBytes) => {
    const { text, lsss } = lsssOf(policy);
    const s1 = randomScalar(randomBytes);
    const s2 = randomScalar(randomBytes);
    const ct0: Triple<G2> = [g2.mul(pp.h[0], s1), g2.mul(pp.h[1], s2), g2.mul(g2.base, (s1 + s2) % p)];
    const s = [s1, s2] as const;
    const rows: Triple<G1>[] = lsss.rows.map((row, i) => {
      const y = lsss.rowAttributes[i]!;
      const out: G1[] = [];
      for (let l = 1; l <= 3; l++) {
        let acc = g1.zero;
        for (let t = 1; t <= 2; t++) {
          // Public combination H(y,l,t) + sum_j M_ij H(col j,l,t), then one secret multiply.
          let base = H("A", l, t, y);
          for (let j = 0; j < row.length; j++) {
            const m = row[j]!;
            if (m === 0n) continue;
            const hc = H("C", l, t, j);
            base = g1.add(base, m === 1n ? hc : m === -1n ? g1.neg(hc) : g1.mulPublic(hc, m));
          }
          acc = g1.add(acc, g1.mul(base, s[t - 1]!));
        }
        out.push(acc);
      }
      return [out[0]!, out[1]!, out[2]!];
    });
    const z = gt.mul(gt.pow(pp.t[0], s1), gt.pow(pp.t[1], s2));
    const { key, mac } = deriveKeys(z);
    const body = codec.encodeCiphertextBody(pp.fingerprint, text, ct0, rows);
    const tag = hmac(sha256, mac, body);
    mac.fill(0);
    return { ciphertext: { fingerprint: pp.fingerprint, policy: text, ct0, rows, tag }, key };
  };


  const decrypt: Fame<G1, G2, GT>["decrypt"] = (uk, ct) => {
    if (!bytesEqualCt(uk.fingerprint, ct.fingerprint)) {
      throw new CryptoError(
        "abe-authority-mismatch",
        `user key is from authority ${toHex(uk.fingerprint).slice(0, 16)}, ciphertext from ${toHex(ct.fingerprint).slice(0, 16)}`,
        { keyAuthority: toHex(uk.fingerprint), ciphertextAuthority: toHex(ct.fingerprint) },
      );
    }
    const node = parsePolicy(ct.policy);
    const lsss = compileLsss(node);
    if (lsss.rows.length !== ct.rows.length) {
      throw new CryptoError("abe-malformed", `ciphertext has ${ct.rows.length} rows, policy needs ${lsss.rows.length}`, {});
    }
    const rec = findReconstruction(node, uk.attributes, p);
    if (rec === null) {
      throw new PolicyError("policy-not-satisfied", "attributes do not satisfy policy", {
        policy: ct.policy,
        attributes: [...uk.attributes],
      });
    }
    // Thresholds: use the exact integer coefficients c_j = D * gamma_j (short scalars) when
    // they are small, compute e(.)^D with D * sk' in place of sk', and take the D-th root in GT
    // (one exponentiation by D^-1 mod p). AND/OR policies have D = 1 and c_j = 1: additions only.
    const bits = (x: bigint): number => (x < 0n ? -x : x).toString(2).length;
    const short =
      bits(rec.denominator) <= shortBits && rec.integerCoefficients.every((c) => bits(c) <= shortBits);
    const coefs = short ? rec.integerCoefficients : rec.coefficients;
    const D = short ? rec.denominator : 1n;
    const A: G1[] = [];
    const B: G1[] = [];
    for (let l = 0; l < 3; l++) {
      const keyPts: G1[] = [];
      const ctPts: G1[] = [];
      for (const i of rec.rowIndices) {
        const comp = uk.skAttr.get(lsss.rowAttributes[i]!);
        if (comp === undefined) throw new CryptoError("abe-malformed", "user key lacks a listed attribute component", {});
        keyPts.push(comp[l]!);
        ctPts.push(ct.rows[i]![l]!);
      }
      const skp = D === 1n ? uk.skPrime[l]! : g1.mulPublic(uk.skPrime[l]!, D);
      A.push(g1.add(skp, g1.msm(keyPts, coefs)));
      B.push(g1.neg(g1.msm(ctPts, coefs)));
    }
    let z = group.pairingProduct([
      [A[0]!, ct.ct0[0]],
      [A[1]!, ct.ct0[1]],
      [A[2]!, ct.ct0[2]],
      [B[0]!, uk.sk0[0]],
      [B[1]!, uk.sk0[1]],
      [B[2]!, uk.sk0[2]],
    ]);
    if (D !== 1n) z = gt.pow(z, inv(D));
    const { key, mac } = deriveKeys(z);
    const body = codec.encodeCiphertextBody(ct.fingerprint, ct.policy, ct.ct0, ct.rows);
    const ok = bytesEqualCt(hmac(sha256, mac, body), ct.tag);
    mac.fill(0);
    if (!ok) {
      key.fill(0);
      throw new CryptoError(
        "abe-decapsulation-failed",
        "decapsulation failed: confirmation tag mismatch (tampered ciphertext or forged/pooled key)",
        {},
      );
    }
    return key;
  };

  const decodeMasterKey = (bytes: Uint8Array): FameMasterKey => {
    const mk = codec.decodeMasterKeyUnchecked(bytes);
    if (!bytesEqualCt(publicParamsFromMaster(mk).fingerprint, mk.fingerprint)) {
      throw new CryptoError(
        "abe-malformed",
        "master key at byte 7: fingerprint does not match the public params its scalars define",
        { field: "master key fingerprint", offset: 7 },
      );
    }
    return mk;
  };

  return { group, codec, setup, publicParamsFromMaster, keygen, encrypt, decrypt, decodeMasterKey };
}

/** FAME on BLS12-381. */
export const fame: Fame<Bls12381G1, Bls12381G2, Bls12381GT> = createFame(bls12_381Group);

export type PublicParams = FamePublicParams<Bls12381G2, Bls12381GT>;
export type MasterKey = FameMasterKey;
export type UserKey = FameUserKey<Bls12381G1, Bls12381G2>;
export type Ciphertext = FameCiphertext<Bls12381G1, Bls12381G2>;
export type Encapsulation = FameEncapsulation<Bls12381G1, Bls12381G2>;

export const setup = fame.setup;
export const keygen = fame.keygen;
export const encrypt = fame.encrypt;
export const decrypt = fame.decrypt;
export const encodePublicParams = fame.codec.encodePublicParams;
export const decodePublicParams = fame.codec.decodePublicParams;
export const encodeMasterKey = fame.codec.encodeMasterKey;
export const decodeMasterKey = fame.decodeMasterKey;
export const encodeUserKey = fame.codec.encodeUserKey;
export const decodeUserKey = fame.codec.decodeUserKey;
export const encodeCiphertext = fame.codec.encodeCiphertext;
export const decodeCiphertext = fame.codec.decodeCiphertext;

/** Hex SHA-256 fingerprint of the public parameters (names an authority). */
export function fingerprintHex(pp: { fingerprint: Uint8Array }): string {
  return toHex(pp.fingerprint);
}

/** Short display form: "fame:" + first 16 hex digits of the fingerprint. */
export function shortFingerprint(pp: { fingerprint: Uint8Array }): string {
  return "fame:" + toHex(pp.fingerprint).slice(0, 16);
}
