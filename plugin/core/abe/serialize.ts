/**
 * Versioned binary encodings of FAME objects, with strict decoding. Layouts (all integers
 * big-endian; G1 = 48-byte and G2 = 96-byte compressed points, GT = 576 bytes, scalar = 32 bytes;
 * sizes for BLS12-381), documented in docs/cp-abe.md:
 *
 *   header (7)    "SNAB" | version u8 = 1 | scheme u8 = 1 (FAME, k=2) | kind u8
 *   kind 1 public params : H1 G2 | H2 G2 | T1 GT | T2 GT                       (1351 bytes)
 *   kind 2 master key    : fingerprint 32 | a1 a2 b1 b2 k1 k2 k3 (scalars)     (263 bytes)
 *   kind 3 user key      : fingerprint 32 | n u16 | n x (len u8 | name) |
 *                          sk0 3xG2 | sk' 3xG1 | n x 3xG1   (names strictly ascending)
 *   kind 4 ciphertext    : fingerprint 32 | len u16 | canonical policy | ct0 3xG2 |
 *                          rows u16 | rows x 3xG1 | tag 32
 *
 * Decoding checks magic, version, scheme, kind, every length, that nothing trails, every group
 * element (canonical, on curve, in the prime-order subgroup, not the identity; GT of order p),
 * scalars in [1, p-1], attribute names (charset, ascending, unique), the policy (parses, is in
 * canonical form, has as many LSSS rows as the ciphertext). Failures are
 * CryptoError("abe-malformed") naming the field and byte offset.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { CryptoError } from "../../errors.js";
import type { PairingGroup } from "./group.js";
import type { FameCiphertext, FameMasterKey, FamePublicParams, FameUserKey } from "./fame.js";
import {
  compileLsss,
  isValidAttribute,
  MAX_ATTRIBUTE_LENGTH,
  MAX_KEY_ATTRIBUTES,
  MAX_POLICY_LENGTH,
  parsePolicy,
  printPolicy,
} from "./policy.js";

export const ABE_MAGIC = Uint8Array.of(0x53, 0x4e, 0x41, 0x42); // "SNAB"
export const ABE_FORMAT_VERSION = 1;
export const ABE_SCHEME_FAME = 1;
export const KIND_PUBLIC_PARAMS = 1;
export const KIND_MASTER_KEY = 2;
export const KIND_USER_KEY = 3;
export const KIND_CIPHERTEXT = 4;
const HEADER_BYTES = 7;
const FP_BYTES = 32;

type Triple<P> = readonly [P, P, P];

const KIND_NAMES: Record<number, string> = {
  [KIND_PUBLIC_PARAMS]: "public params",
  [KIND_MASTER_KEY]: "master key",
  [KIND_USER_KEY]: "user key",
  [KIND_CIPHERTEXT]: "ciphertext",
};

export interface FameCodec<G1, G2, GT> {
  encodePublicParamsRaw(h: readonly [G2, G2], t: readonly [GT, GT]): Uint8Array;
  encodePublicParams(pp: FamePublicParams<G2, GT>): Uint8Array;
  decodePublicParams(bytes: Uint8Array): FamePublicParams<G2, GT>;
  encodeMasterKey(mk: FameMasterKey): Uint8Array;
  /** Structural decode only; Fame.decodeMasterKey also checks it against its public params. */
  decodeMasterKeyUnchecked(bytes: Uint8Array): FameMasterKey;
  encodeUserKey(uk: FameUserKey<G1, G2>): Uint8Array;
  decodeUserKey(bytes: Uint8Array): FameUserKey<G1, G2>;
  /** Everything but the tag: the input of the confirmation MAC. */
  encodeCiphertextBody(fingerprint: Uint8Array, policy: string, ct0: Triple<G2>, rows: readonly Triple<G1>[]): Uint8Array;
  encodeCiphertext(ct: FameCiphertext<G1, G2>): Uint8Array;
  decodeCiphertext(bytes: Uint8Array): FameCiphertext<G1, G2>;
}

class Writer {
  private readonly parts: Uint8Array[] = [];
  private n = 0;
  bytes(b: Uint8Array): this {
    this.parts.push(b);
    this.n += b.length;
    return this;
  }
  u8(v: number): this {
    return this.bytes(Uint8Array.of(v));
  }
  u16(v: number): this {
    return this.bytes(Uint8Array.of((v >>> 8) & 0xff, v & 0xff));
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.n);
    let o = 0;
    for (const part of this.parts) {
      out.set(part, o);
      o += part.length;
    }
    return out;
  }
}

function malformed(what: string, offset: number, reason: string): CryptoError {
  return new CryptoError("abe-malformed", `${what} at byte ${offset}: ${reason}`, { field: what, offset });
}

class Reader {
  off = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly label: string,
  ) {}
  take(n: number, field: string): Uint8Array {
    if (this.off + n > this.buf.length) {
      throw malformed(`${this.label} ${field}`, this.off, `truncated: need ${n} bytes, ${this.buf.length - this.off} left`);
    }
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }
  u8(field: string): number {
    return this.take(1, field)[0]!;
  }
  u16(field: string): number {
    const b = this.take(2, field);
    return (b[0]! << 8) | b[1]!;
  }
  end(): void {
    if (this.off !== this.buf.length) {
      throw malformed(this.label, this.off, `${this.buf.length - this.off} trailing bytes`);
    }
  }
}

function asciiDecode(b: Uint8Array): string | null {
  let s = "";
  for (const x of b) {
    if (x < 0x20 || x > 0x7e) return null;
    s += String.fromCharCode(x);
  }
  return s;
}

function asciiEncode(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new CryptoError("abe-malformed", "non-ASCII text cannot be encoded", {});
    out[i] = c;
  }
  return out;
}

/** Builds the codec for a pairing group. */
export function createFameCodec<G1, G2, GT>(group: PairingGroup<G1, G2, GT>): FameCodec<G1, G2, GT> {
  const { g1, g2, gt } = group;
  const p = group.order;
  const SB = group.scalarBytes;

  const header = (w: Writer, kind: number): Writer =>
    w.bytes(ABE_MAGIC).u8(ABE_FORMAT_VERSION).u8(ABE_SCHEME_FAME).u8(kind);

  const readHeader = (r: Reader, kind: number, label: string): void => {
    const magic = r.take(4, "magic");
    if (!magic.every((b, i) => b === ABE_MAGIC[i])) throw malformed(`${label} magic`, 0, 'expected "SNAB"');
    const v = r.u8("version");
    if (v !== ABE_FORMAT_VERSION) throw malformed(`${label} version`, 4, `unsupported version ${v}, expected ${ABE_FORMAT_VERSION}`);
    const s = r.u8("scheme");
    if (s !== ABE_SCHEME_FAME) throw malformed(`${label} scheme`, 5, `unknown scheme ${s}, expected ${ABE_SCHEME_FAME} (FAME)`);
    const k = r.u8("kind");
    if (k !== kind) {
      throw malformed(`${label} kind`, 6, `found ${KIND_NAMES[k] ?? `unknown kind ${k}`}, expected ${KIND_NAMES[kind]}`);
    }
  };

  const point = <P>(ops: { bytes: number; fromBytes(b: Uint8Array): P }, r: Reader, field: string, label: string): P => {
    const at = r.off;
    const b = r.take(ops.bytes, field);
    try {
      return ops.fromBytes(b);
    } catch (e) {
      throw malformed(`${label} ${field}`, at, (e as Error).message);
    }
  };

  const scalarBytes = (x: bigint): Uint8Array => {
    const out = new Uint8Array(SB);
    let v = x;
    for (let i = SB - 1; i >= 0; i--) {
      out[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    return out;
  };

  const readScalar = (r: Reader, field: string, label: string): bigint => {
    const at = r.off;
    let x = 0n;
    for (const b of r.take(SB, field)) x = (x << 8n) | BigInt(b);
    if (x === 0n || x >= p) throw malformed(`${label} ${field}`, at, "scalar out of range [1, p-1]");
    return x;
  };

  const checkBytes = (v: unknown, n: number, what: string): Uint8Array => {
    if (!(v instanceof Uint8Array) || v.length !== n) {
      throw new CryptoError("abe-malformed", `${what}: expected ${n} bytes`, { field: what });
    }
    return v;
  };

  const encodePublicParamsRaw = (h: readonly [G2, G2], t: readonly [GT, GT]): Uint8Array =>
    header(new Writer(), KIND_PUBLIC_PARAMS)
      .bytes(g2.toBytes(h[0]))
      .bytes(g2.toBytes(h[1]))
      .bytes(gt.toBytes(t[0]))
      .bytes(gt.toBytes(t[1]))
      .finish();

  const decodePublicParams = (bytes: Uint8Array): FamePublicParams<G2, GT> => {
    const L = "public params";
    checkInput(bytes, L);
    const r = new Reader(bytes, L);
    readHeader(r, KIND_PUBLIC_PARAMS, L);
    const h: [G2, G2] = [point(g2, r, "H1", L), point(g2, r, "H2", L)];
    const t: [GT, GT] = [point(gt, r, "T1", L), point(gt, r, "T2", L)];
    r.end();
    return { h, t, fingerprint: sha256(bytes) };
  };

  const encodeMasterKey = (mk: FameMasterKey): Uint8Array => {
    const w = header(new Writer(), KIND_MASTER_KEY).bytes(checkBytes(mk.fingerprint, FP_BYTES, "master key fingerprint"));
    for (const x of [...mk.a, ...mk.b, ...mk.k]) w.bytes(scalarBytes(x));
    return w.finish();
  };

  const decodeMasterKeyUnchecked = (bytes: Uint8Array): FameMasterKey => {
    const L = "master key";
    checkInput(bytes, L);
    const r = new Reader(bytes, L);
    readHeader(r, KIND_MASTER_KEY, L);
    const fingerprint = Uint8Array.from(r.take(FP_BYTES, "fingerprint"));
    const names = ["a1", "a2", "b1", "b2", "k1", "k2", "k3"];
    const s = names.map((n) => readScalar(r, n, L));
    r.end();
    return { fingerprint, a: [s[0]!, s[1]!], b: [s[2]!, s[3]!], k: [s[4]!, s[5]!, s[6]!] };
  };

  const encodeUserKey = (uk: FameUserKey<G1, G2>): Uint8Array => {
    const w = header(new Writer(), KIND_USER_KEY).bytes(checkBytes(uk.fingerprint, FP_BYTES, "user key fingerprint"));
    w.u16(uk.attributes.length);
    for (const a of uk.attributes) {
      const b = asciiEncode(a);
      w.u8(b.length).bytes(b);
    }
    for (const q of uk.sk0) w.bytes(g2.toBytes(q));
    for (const q of uk.skPrime) w.bytes(g1.toBytes(q));
    for (const a of uk.attributes) {
      const comp = uk.skAttr.get(a);
      if (comp === undefined) throw new CryptoError("abe-malformed", `user key has no component for ${JSON.stringify(a)}`, {});
      for (const q of comp) w.bytes(g1.toBytes(q));
    }
    return w.finish();
  };

  const decodeUserKey = (bytes: Uint8Array): FameUserKey<G1, G2> => {
    const L = "user key";
    checkInput(bytes, L);
    const r = new Reader(bytes, L);
    readHeader(r, KIND_USER_KEY, L);
    const fingerprint = Uint8Array.from(r.take(FP_BYTES, "fingerprint"));
    const nAt = r.off;
    const n = r.u16("attribute count");
    if (n > MAX_KEY_ATTRIBUTES) throw malformed(`${L} attribute count`, nAt, `${n} attributes, limit ${MAX_KEY_ATTRIBUTES}`);
    const attributes: string[] = [];
    for (let i = 0; i < n; i++) {
      const at = r.off;
      const len = r.u8(`attribute ${i} length`);
      if (len === 0 || len > MAX_ATTRIBUTE_LENGTH) throw malformed(`${L} attribute ${i}`, at, `length ${len} not in 1..${MAX_ATTRIBUTE_LENGTH}`);
      const name = asciiDecode(r.take(len, `attribute ${i}`));
      if (name === null || !isValidAttribute(name)) throw malformed(`${L} attribute ${i}`, at + 1, "invalid attribute name");
      const prev = attributes[attributes.length - 1];
      if (prev !== undefined && !(prev < name)) {
        throw malformed(`${L} attribute ${i}`, at + 1, `attribute names must be strictly ascending (${JSON.stringify(prev)} >= ${JSON.stringify(name)})`);
      }
      attributes.push(name);
    }
    const sk0: Triple<G2> = [point(g2, r, "sk0[0]", L), point(g2, r, "sk0[1]", L), point(g2, r, "sk0[2]", L)];
    const skPrime: Triple<G1> = [point(g1, r, "sk'[0]", L), point(g1, r, "sk'[1]", L), point(g1, r, "sk'[2]", L)];
    const skAttr = new Map<string, Triple<G1>>();
    for (const a of attributes) {
      const f = `sk[${a}]`;
      skAttr.set(a, [point(g1, r, `${f}[0]`, L), point(g1, r, `${f}[1]`, L), point(g1, r, `${f}[2]`, L)]);
    }
    r.end();
    return { fingerprint, attributes, sk0, skPrime, skAttr };
  };

  const encodeCiphertextBody = (
    fingerprint: Uint8Array,
    policy: string,
    ct0: Triple<G2>,
    rows: readonly Triple<G1>[],
  ): Uint8Array => {
    const pol = asciiEncode(policy);
    if (pol.length > MAX_POLICY_LENGTH) throw new CryptoError("abe-malformed", "policy too long to encode", {});
    const w = header(new Writer(), KIND_CIPHERTEXT).bytes(checkBytes(fingerprint, FP_BYTES, "ciphertext fingerprint"));
    w.u16(pol.length).bytes(pol);
    for (const q of ct0) w.bytes(g2.toBytes(q));
    w.u16(rows.length);
    for (const row of rows) for (const q of row) w.bytes(g1.toBytes(q));
    return w.finish();
  };

  const encodeCiphertext = (ct: FameCiphertext<G1, G2>): Uint8Array => {
    const body = encodeCiphertextBody(ct.fingerprint, ct.policy, ct.ct0, ct.rows);
    const out = new Uint8Array(body.length + 32);
    out.set(body, 0);
    out.set(checkBytes(ct.tag, 32, "ciphertext tag"), body.length);
    return out;
  };

  const decodeCiphertext = (bytes: Uint8Array): FameCiphertext<G1, G2> => {
    const L = "ciphertext";
    checkInput(bytes, L);
    const r = new Reader(bytes, L);
    readHeader(r, KIND_CIPHERTEXT, L);
    const fingerprint = Uint8Array.from(r.take(FP_BYTES, "fingerprint"));
    const lenAt = r.off;
    const len = r.u16("policy length");
    if (len === 0 || len > MAX_POLICY_LENGTH) throw malformed(`${L} policy length`, lenAt, `${len} not in 1..${MAX_POLICY_LENGTH}`);
    const polAt = r.off;
    const policy = asciiDecode(r.take(len, "policy"));
    if (policy === null) throw malformed(`${L} policy`, polAt, "non-printable or non-ASCII byte");
    let rowCount: number;
    try {
      const node = parsePolicy(policy);
      if (printPolicy(node) !== policy) throw new Error("policy is not in canonical form");
      rowCount = compileLsss(node).rows.length;
    } catch (e) {
      throw malformed(`${L} policy`, polAt, (e as Error).message);
    }
    const ct0: Triple<G2> = [point(g2, r, "ct0[0]", L), point(g2, r, "ct0[1]", L), point(g2, r, "ct0[2]", L)];
    const nAt = r.off;
    const n = r.u16("row count");
    if (n !== rowCount) throw malformed(`${L} row count`, nAt, `${n} rows, the policy has ${rowCount}`);
    const rows: Triple<G1>[] = [];
    for (let i = 0; i < n; i++) {
      rows.push([point(g1, r, `row ${i}[0]`, L), point(g1, r, `row ${i}[1]`, L), point(g1, r, `row ${i}[2]`, L)]);
    }
    const tag = Uint8Array.from(r.take(32, "tag"));
    r.end();
    return { fingerprint, policy, ct0, rows, tag };
  };

  return {
    encodePublicParamsRaw,
    encodePublicParams: (pp) => encodePublicParamsRaw(pp.h, pp.t),
    decodePublicParams,
    encodeMasterKey,
    decodeMasterKeyUnchecked,
    encodeUserKey,
    decodeUserKey,
    encodeCiphertextBody,
    encodeCiphertext,
    decodeCiphertext,
  };
}

function checkInput(bytes: unknown, label: string): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new CryptoError("abe-malformed", `${label}: expected a Uint8Array`, { field: label });
  }
}
