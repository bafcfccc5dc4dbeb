import { bls12_381 } from "@noble/curves/bls12-381.js";
import { beforeAll, describe, expect, it } from "vitest";
import { CryptoError } from "../../plugin/errors.js";
import {
  decodeCiphertext,
  decodeMasterKey,
  decodePublicParams,
  decodeUserKey,
  decrypt,
  encodeCiphertext,
  encodeMasterKey,
  encodePublicParams,
  encodeUserKey,
  encrypt,
  keygen,
  setup,
  type Ciphertext,
  type MasterKey,
  type PublicParams,
  type UserKey,
} from "../../plugin/core/abe/fame.js";
import { seededRandom } from "./helpers.js";

const { Fp, Fp2, Fp12 } = bls12_381.fields;
const rng = seededRandom("serialize.test");

let pp: PublicParams;
let mk: MasterKey;
let uk: UserKey;
let ct: Ciphertext;
let key: Uint8Array;
let ppB: Uint8Array, mkB: Uint8Array, ukB: Uint8Array, ctB: Uint8Array;

beforeAll(() => {
  ({ publicParams: pp, masterKey: mk } = setup(rng));
  uk = keygen(pp, mk, ["task:code", "tier:pro", "admin"], rng);
  ({ ciphertext: ct, key } = encrypt(pp, "task:code and (tier:pro or task:math)", rng));
  ppB = encodePublicParams(pp);
  mkB = encodeMasterKey(mk);
  ukB = encodeUserKey(uk);
  ctB = encodeCiphertext(ct);
});

function malformed(fn: () => unknown, re?: RegExp): CryptoError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CryptoError);
  const e = err as CryptoError;
  expect(e.code).toBe("abe-malformed");
  if (re) expect(e.message).toMatch(re);
  return e;
}

const patch = (b: Uint8Array, at: number, bytes: ArrayLike<number>): Uint8Array => {
  const c = Uint8Array.from(b);
  c.set(bytes, at);
  return c;
};

// Byte offsets (see serialize.ts): header 7, fingerprint 32.
const CT_POLICY_LEN = 39;
const CT_POLICY = 41;
const ctRowsStart = (policyLen: number) => CT_POLICY + policyLen + 3 * 96 + 2;

/** Rebuilds a ciphertext encoding with another policy text (keeps points and tag). */
function withPolicy(bytes: Uint8Array, policy: string): Uint8Array {
  const oldLen = (bytes[CT_POLICY_LEN]! << 8) | bytes[CT_POLICY_LEN + 1]!;
  const p = new TextEncoder().encode(policy);
  const out = new Uint8Array(bytes.length - oldLen + p.length);
  out.set(bytes.subarray(0, CT_POLICY_LEN));
  out[CT_POLICY_LEN] = p.length >> 8;
  out[CT_POLICY_LEN + 1] = p.length & 0xff;
  out.set(p, CT_POLICY);
  out.set(bytes.subarray(CT_POLICY + oldLen), CT_POLICY + p.length);
  return out;
}

function bigToBytes(x: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--, x >>= 8n) out[i] = Number(x & 0xffn);
  return out;
}

/** ZCash-format compressed encodings written by hand (noble refuses to encode invalid points). */
function g1Compressed(x: bigint): Uint8Array {
  const b = bigToBytes(x, 48);
  b[0]! |= 0x80;
  return b;
}
function g2Compressed(x: { c0: bigint; c1: bigint }): Uint8Array {
  const b = new Uint8Array(96);
  b.set(bigToBytes(x.c1, 48), 0);
  b.set(bigToBytes(x.c0, 48), 48);
  b[0]! |= 0x80;
  return b;
}

/** x with x^3 + 4 a square (on E1) or not (off the curve). */
function g1X(onCurve: boolean): bigint {
  for (let x = 1n; ; x++) {
    const rhs = Fp.add(Fp.pow(x, 3n), 4n);
    const sq = Fp.eql(Fp.pow(rhs, (Fp.ORDER - 1n) / 2n), Fp.ONE);
    if (sq === onCurve) return x;
  }
}

/** x in Fp2 with x^3 + 4(1+i) a square (on E2): such a point is almost never in G2. */
function g2XOnCurve(): { c0: bigint; c1: bigint } {
  const b = Fp2.fromBigTuple([4n, 4n]);
  for (let c0 = 1n; ; c0++) {
    const x = Fp2.fromBigTuple([c0, 1n]);
    const rhs = Fp2.add(Fp2.mul(Fp2.sqr(x), x), b);
    try {
      Fp2.sqrt(rhs);
      return x;
    } catch {
      /* not a square: next */
    }
  }
}

describe("encodings round-trip", () => {
  it("public params: 1351 bytes, fingerprint = SHA-256 of the encoding", () => {
    expect(ppB.length).toBe(1351);
    const back = decodePublicParams(ppB);
    expect(back.fingerprint).toEqual(pp.fingerprint);
    expect(encodePublicParams(back)).toEqual(ppB);
  });

  it("master key: 263 bytes, checked against the public params it defines", () => {
    expect(mkB.length).toBe(263);
    const back = decodeMasterKey(mkB);
    expect(back).toEqual(mk);
    expect(encodeMasterKey(back)).toEqual(mkB);
  });

  it("user key and ciphertext decode to objects that still decrypt", () => {
    const uk2 = decodeUserKey(ukB);
    const ct2 = decodeCiphertext(ctB);
    expect(encodeUserKey(uk2)).toEqual(ukB);
    expect(encodeCiphertext(ct2)).toEqual(ctB);
    expect(uk2.attributes).toEqual(["admin", "task:code", "tier:pro"]);
    expect(ukB.length).toBe(7 + 32 + 2 + (1 + 5) + (1 + 9) + (1 + 8) + 3 * 96 + 3 * 48 + 3 * 3 * 48);
    expect(decrypt(uk2, ct2)).toEqual(key);
  });
});

describe("strict decoding", () => {
  const all = () =>
    [
      ["public params", ppB, decodePublicParams],
      ["master key", mkB, decodeMasterKey],
      ["user key", ukB, decodeUserKey],
      ["ciphertext", ctB, decodeCiphertext],
    ] as const;

  it("rejects truncation anywhere", () => {
    for (const [label, bytes, decode] of all()) {
      const cuts = [0, 3, 6, 7, 20, 39, 41, 60, bytes.length - 33, bytes.length - 1];
      for (const n of cuts) malformed(() => decode(bytes.subarray(0, n)), new RegExp(`${label}.*(truncated|point|scalar|attribute|policy|G1|G2|GT)`));
    }
  });

  it("rejects trailing bytes", () => {
    for (const [, bytes, decode] of all()) {
      const longer = new Uint8Array(bytes.length + 1);
      longer.set(bytes);
      malformed(() => decode(longer), /1 trailing bytes/);
    }
  });

  it("rejects wrong magic, version, scheme and kind", () => {
    for (const [label, bytes, decode] of all()) {
      malformed(() => decode(patch(bytes, 0, [0x58])), /magic/);
      malformed(() => decode(patch(bytes, 4, [2])), new RegExp(`${label} version at byte 4: unsupported version 2`));
      malformed(() => decode(patch(bytes, 5, [9])), /scheme at byte 5/);
    }
    malformed(() => decodeUserKey(ctB), /found ciphertext, expected user key/);
    malformed(() => decodeCiphertext(ppB), /found public params, expected ciphertext/);
    malformed(() => decodePublicParams(patch(ppB, 6, [77])), /unknown kind 77/);
    malformed(() => decodeCiphertext("x" as unknown as Uint8Array), /expected a Uint8Array/);
  });

  it("rejects G1 points off the curve, outside the subgroup, non-canonical or the identity", () => {
    const row0 = ctRowsStart(ct.policy.length);
    malformed(() => decodeCiphertext(patch(ctB, row0, g1Compressed(g1X(false)))), new RegExp(`row 0\\[0\\] at byte ${row0}`));
    const wrongSub = g1Compressed(g1X(true));
    const e = malformed(() => decodeCiphertext(patch(ctB, row0, wrongSub)));
    expect(e.message).toMatch(/subgroup/);
    malformed(() => decodeCiphertext(patch(ctB, row0, g1Compressed(Fp.ORDER + 1n))), /row 0/);
    const inf = new Uint8Array(48);
    inf[0] = 0xc0;
    malformed(() => decodeCiphertext(patch(ctB, row0, inf)), /identity/);
    // Same checks on user keys (sk' starts after the names and sk0).
    const skPrime = 7 + 32 + 2 + 6 + 10 + 9 + 3 * 96;
    malformed(() => decodeUserKey(patch(ukB, skPrime, wrongSub)), /user key sk'\[0\].*subgroup/);
  });

  it("rejects G2 points outside the subgroup or not canonical", () => {
    const ct0 = CT_POLICY + ct.policy.length;
    const bad = g2Compressed(g2XOnCurve());
    malformed(() => decodeCiphertext(patch(ctB, ct0, bad)), /ct0\[0\].*subgroup/);
    malformed(() => decodePublicParams(patch(ppB, 7, bad)), /public params H1 at byte 7.*subgroup/);
    malformed(() => decodeUserKey(patch(ukB, 7 + 32 + 2 + 25, bad)), /sk0\[0\].*subgroup/);
    malformed(() => decodePublicParams(patch(ppB, 7 + 96, new Uint8Array(96).fill(0xff))), /H2/);
  });

  it("rejects GT elements not of order p, the identity, or non-canonical", () => {
    const T1 = 7 + 2 * 96;
    const junk = Fp12.toBytes(Fp12.fromBigTwelve([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n, 11n, 12n]));
    malformed(() => decodePublicParams(patch(ppB, T1, junk)), /T1 at byte 199: GT: element not of order p/);
    malformed(() => decodePublicParams(patch(ppB, T1, Fp12.toBytes(Fp12.ONE))), /identity/);
    malformed(() => decodePublicParams(patch(ppB, T1, new Uint8Array(48).fill(0xff))), /T1/);
  });

  it("rejects master keys with bad scalars or a fingerprint their scalars do not produce", () => {
    malformed(() => decodeMasterKey(patch(mkB, 39, new Uint8Array(32))), /a1 at byte 39: scalar out of range/);
    malformed(() => decodeMasterKey(patch(mkB, 71, bigToBytes(bls12_381.fields.Fr.ORDER, 32))), /a2.*out of range/);
    malformed(() => decodeMasterKey(patch(mkB, 7, new Uint8Array(32))), /fingerprint does not match/);
    const other = setup(seededRandom("other"));
    const spliced = Uint8Array.from(mkB);
    spliced.set(other.publicParams.fingerprint, 7);
    malformed(() => decodeMasterKey(spliced), /fingerprint/);
  });

  it("rejects bad, unsorted or duplicate attribute names in user keys", () => {
    const names = 7 + 32 + 2; // "admin", "task:code", "tier:pro"
    malformed(() => decodeUserKey(patch(ukB, names + 1, [0x20])), /attribute 0 at byte 42: invalid attribute name/);
    malformed(() => decodeUserKey(patch(ukB, names, [0])), /attribute 0 .*length 0/);
    // "admin" -> "zdmin": no longer ascending.
    malformed(() => decodeUserKey(patch(ukB, names + 1, [0x7a])), /strictly ascending/);
    // "task:code" -> "tier:code" < "tier:pro" still sorted: decodes, but the component is for
    // task:code, so relabelling it does not grant tier:code.
    const relabelled = decodeUserKey(patch(ukB, names + 7, new TextEncoder().encode("tier")));
    expect(relabelled.attributes).toEqual(["admin", "tier:code", "tier:pro"]);
    const { ciphertext } = encrypt(pp, "tier:code", rng);
    const e = (() => {
      try {
        decrypt(relabelled, ciphertext);
      } catch (err) {
        return err as CryptoError;
      }
      throw new Error("decrypted with a relabelled key");
    })();
    expect(e.code).toBe("abe-decapsulation-failed");
    malformed(() => decodeUserKey(patch(ukB, 39, [0xff, 0xff])), /attribute count.*65535 attributes, limit 256/);
  });

  it("rejects policies that are non-canonical, unparsable or do not match the row count", () => {
    malformed(() => decodeCiphertext(withPolicy(ctB, "task:code AND (tier:pro or task:math)")), /not in canonical form/);
    malformed(() => decodeCiphertext(withPolicy(ctB, "task:code and (tier:pro or")), /policy at byte 41: policy syntax error at offset 26/);
    malformed(() => decodeCiphertext(withPolicy(ctB, "task:code and tier:pro")), /row count.*3 rows, the policy has 2/);
    malformed(() => decodeCiphertext(withPolicy(ctB, "")), /policy length/);
    malformed(() => decodeCiphertext(patch(ctB, CT_POLICY, [0xc3])), /non-ASCII/);
  });

  it("swapped attribute names in a ciphertext policy or swapped rows fail the confirmation tag", () => {
    const swapped = decodeCiphertext(withPolicy(ctB, "tier:pro and (task:code or task:math)"));
    const holder = keygen(pp, mk, ["task:code", "tier:pro"], rng);
    expect(decrypt(holder, ct)).toEqual(key);
    expect(() => decrypt(holder, swapped)).toThrow(/confirmation tag/);
    const rowsSwapped: Ciphertext = { ...ct, rows: [ct.rows[1]!, ct.rows[0]!, ct.rows[2]!] };
    expect(() => decrypt(holder, rowsSwapped)).toThrow(CryptoError);
    const tagFlipped = patch(ctB, ctB.length - 1, [ctB[ctB.length - 1]! ^ 1]);
    expect(() => decrypt(holder, decodeCiphertext(tagFlipped))).toThrow(/confirmation tag/);
  });
});
