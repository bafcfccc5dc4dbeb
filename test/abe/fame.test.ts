import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { CryptoError, PolicyError } from "../../plugin/errors.js";
import { bls12_381Group } from "../../plugin/core/abe/group.js";
import {
  createFame,
  decrypt,
  encrypt,
  fame,
  fingerprintHex,
  keygen,
  setup,
  shortFingerprint,
  type MasterKey,
  type PublicParams,
  type UserKey,
} from "../../plugin/core/abe/fame.js";
import { parsePolicy, satisfies } from "../../plugin/core/abe/policy.js";
import { ATTR_POOL, countLeaves, rawPolicyArb, renderPolicy, seededRandom } from "./helpers.js";

let pp: PublicParams;
let mk: MasterKey;
const rng = seededRandom("fame.test");
const keyCache = new Map<string, UserKey>();

function userKey(attrs: readonly string[]): UserKey {
  const id = [...attrs].sort().join(",");
  let k = keyCache.get(id);
  if (k === undefined) {
    k = keygen(pp, mk, attrs, rng);
    keyCache.set(id, k);
  }
  return k;
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

beforeAll(() => {
  ({ publicParams: pp, masterKey: mk } = setup(rng));
});

describe("FAME KEM", () => {
  it("setup gives a 32-byte fingerprint naming the authority", () => {
    expect(pp.fingerprint.length).toBe(32);
    expect(fingerprintHex(pp)).toMatch(/^[0-9a-f]{64}$/);
    expect(shortFingerprint(pp)).toBe("fame:" + fingerprintHex(pp).slice(0, 16));
    expect(mk.fingerprint).toEqual(pp.fingerprint);
    expect(fame.publicParamsFromMaster(mk).fingerprint).toEqual(pp.fingerprint);
  });

  it("encapsulates a fresh 32-byte key that a satisfying key recovers", () => {
    const uk = userKey(["task:code", "tier:pro"]);
    const a = encrypt(pp, "task:code and tier:pro", rng);
    const b = encrypt(pp, "task:code and tier:pro", rng);
    expect(a.key.length).toBe(32);
    expect(a.key).not.toEqual(b.key);
    expect(a.ciphertext.policy).toBe("task:code and tier:pro");
    expect(decrypt(uk, a.ciphertext)).toEqual(a.key);
    expect(decrypt(uk, b.ciphertext)).toEqual(b.key);
  });

  it("accepts a parsed policy and stores its canonical text", () => {
    const { ciphertext, key } = encrypt(pp, parsePolicy("(admin) OR (task:math && tier:pro)"), rng);
    expect(ciphertext.policy).toBe("admin or task:math and tier:pro");
    expect(decrypt(userKey(["admin"]), ciphertext)).toEqual(key);
    expect(decrypt(userKey(["task:math", "tier:pro", "x"]), ciphertext)).toEqual(key);
  });

  it("refuses a key that does not satisfy the policy with a clear PolicyError", () => {
    const { ciphertext } = encrypt(pp, "task:code and tier:pro", rng);
    const e = thrown(() => decrypt(userKey(["task:code"]), ciphertext));
    expect(e).toBeInstanceOf(PolicyError);
    expect((e as PolicyError).code).toBe("policy-not-satisfied");
    expect(e.message).toBe("attributes do not satisfy policy");
    expect(thrown(() => decrypt(userKey([]), ciphertext))).toBeInstanceOf(PolicyError);
  });

  it("thresholds: any k of n decrypt, k-1 do not", () => {
    const { ciphertext, key } = encrypt(pp, "2 of (a, b, c, d)", rng);
    for (const held of [["a", "b"], ["a", "d"], ["c", "d"], ["b", "c", "d"], ["a", "b", "c", "d"]]) {
      expect(decrypt(userKey(held), ciphertext)).toEqual(key);
    }
    for (const held of [["a"], ["d"], ["e", "f", "g"]]) {
      expect(thrown(() => decrypt(userKey(held), ciphertext))).toBeInstanceOf(PolicyError);
    }
    const nested = encrypt(pp, "admin or 3 of (a, b and c, d, e or f)", rng);
    expect(decrypt(userKey(["a", "b", "c", "f"]), nested.ciphertext)).toEqual(nested.key);
    expect(decrypt(userKey(["admin"]), nested.ciphertext)).toEqual(nested.key);
    expect(thrown(() => decrypt(userKey(["a", "b", "f"]), nested.ciphertext))).toBeInstanceOf(PolicyError);
  });

  it("thresholds decrypt the same with short integer coefficients and with coefficients mod p", () => {
    const modP = createFame(bls12_381Group, { shortCoefficientBits: 0 });
    for (const [policy, held] of [
      ["2 of (a, b, c)", ["a", "c"]],
      ["3 of (a, b, c, d, e)", ["b", "d", "e"]],
      ["a and 2 of (b, c or d, 2 of (e, f, g))", ["a", "d", "e", "g"]],
    ] as const) {
      const { ciphertext, key } = encrypt(pp, policy, rng);
      const uk = userKey(held);
      expect(decrypt(uk, ciphertext)).toEqual(key);
      expect(modP.decrypt(uk, ciphertext)).toEqual(key);
    }
  });

  it("random policies and attribute sets: satisfying gives the same key, others fail clearly", () => {
    fc.assert(
      fc.property(
        rawPolicyArb(5),
        fc.nat(),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        (raw, variant, mask) => {
          const names = ATTR_POOL.slice(0, countLeaves(raw));
          const text = renderPolicy(raw, names, variant);
          const held = ATTR_POOL.slice(0, 8).filter((_, i) => mask[i]);
          const { ciphertext, key } = encrypt(pp, text, rng);
          const uk = userKey(held);
          if (satisfies(parsePolicy(text), held)) {
            expect(decrypt(uk, ciphertext)).toEqual(key);
          } else {
            const e = thrown(() => decrypt(uk, ciphertext));
            expect(e).toBeInstanceOf(PolicyError);
            expect((e as PolicyError).code).toBe("policy-not-satisfied");
          }
        },
      ),
      { numRuns: 10, seed: 424242 },
    );
  });

  it("collusion: keys for {a} and {b} pooled naively do not open `a and b`", () => {
    const ua = keygen(pp, mk, ["a"], rng);
    const ub = keygen(pp, mk, ["b"], rng);
    const { ciphertext, key } = encrypt(pp, "a and b", rng);
    expect(thrown(() => decrypt(ua, ciphertext))).toBeInstanceOf(PolicyError);
    expect(thrown(() => decrypt(ub, ciphertext))).toBeInstanceOf(PolicyError);
    // Graft b's attribute component onto a's key (and the other way round): the per-key
    // randomness (r1, r2 in sk0/sk', sigma per attribute) no longer cancels.
    const pooled = (base: UserKey): UserKey => ({
      ...base,
      attributes: ["a", "b"],
      skAttr: new Map([
        ["a", ua.skAttr.get("a")!],
        ["b", ub.skAttr.get("b")!],
      ]),
    });
    for (const base of [ua, ub]) {
      const e = thrown(() => decrypt(pooled(base), ciphertext));
      expect(e).toBeInstanceOf(CryptoError);
      expect((e as CryptoError).code).toBe("abe-decapsulation-failed");
    }
    // Control: one honest key with both attributes works.
    expect(decrypt(keygen(pp, mk, ["b", "a"], rng), ciphertext)).toEqual(key);
  });

  it("a key from another authority is refused before any pairing", () => {
    const other = setup(seededRandom("other authority"));
    const foreign = keygen(other.publicParams, other.masterKey, ["a"], rng);
    const { ciphertext } = encrypt(pp, "a", rng);
    const e = thrown(() => decrypt(foreign, ciphertext));
    expect(e).toBeInstanceOf(CryptoError);
    expect((e as CryptoError).code).toBe("abe-authority-mismatch");
    // Forging the fingerprint does not help: the confirmation tag catches it.
    const e2 = thrown(() => decrypt({ ...foreign, fingerprint: pp.fingerprint }, ciphertext));
    expect((e2 as CryptoError).code).toBe("abe-decapsulation-failed");
    expect(thrown(() => keygen(pp, other.masterKey, ["a"], rng))).toBeInstanceOf(CryptoError);
  });

  it("keygen validates attributes and de-duplicates and sorts them", () => {
    const uk = keygen(pp, mk, ["tier:pro", "admin", "tier:pro"], rng);
    expect(uk.attributes).toEqual(["admin", "tier:pro"]);
    expect(thrown(() => keygen(pp, mk, ["bad name"], rng))).toBeInstanceOf(PolicyError);
    expect(thrown(() => keygen(pp, mk, ["and"], rng))).toBeInstanceOf(PolicyError);
  });

  it("rejects duplicate attributes in policies (FAME needs an injective row labelling)", () => {
    const e = thrown(() => encrypt(pp, "(a and b) or (a and c)", rng));
    expect((e as PolicyError).code).toBe("policy-duplicate-attribute");
  });

  it("fails closed on a broken random source", () => {
    expect(thrown(() => encrypt(pp, "a", () => new Uint8Array(3)))).toBeInstanceOf(CryptoError);
  });

  it("deterministic given the same randomness", () => {
    const x = encrypt(pp, "a or b", seededRandom("same"));
    const y = encrypt(pp, "a or b", seededRandom("same"));
    expect(x.key).toEqual(y.key);
    expect(fame.codec.encodeCiphertext(x.ciphertext)).toEqual(fame.codec.encodeCiphertext(y.ciphertext));
  });
});
