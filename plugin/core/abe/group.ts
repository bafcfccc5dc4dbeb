/**
 * Abstract asymmetric pairing group (Type-3: G1 x G2 -> GT, prime order p) that the FAME scheme
 * is written against, and its one concrete instance, BLS12-381 from @noble/curves.
 *
 * Everything curve-specific lives in {@link bls12_381Group}; fame.ts and serialize.ts only see
 * {@link PairingGroup}. Encodings are the curve's canonical compressed forms (ZCash format for
 * BLS12-381: G1 48 bytes, G2 96 bytes) and GT as 12 base-field coefficients (576 bytes).
 *
 * Decoders are strict: exact length, canonical encoding (decode then re-encode must give the same
 * bytes), on the curve, in the prime-order subgroup (noble's fromBytes runs assertValidity(),
 * which includes the isTorsionFree() subgroup check; tests pin this), and not the identity. A GT element must
 * have order p (x^p = 1, x != 1).
 *
 * Side channels: `mul` uses noble's constant-time ladder (wNAF with fake additions) but is not
 * blinded; GT exponentiation is a plain square-and-multiply. Keep authority operations (setup,
 * keygen) off hosts shared with untrusted code. `mulPublic`/`msm` are variable-time and only
 * ever see public scalars (LSSS entries and reconstruction coefficients).
 */
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { mulAddUnsafe, pippenger } from "@noble/curves/abstract/curve.js";
import { equalBytes } from "@noble/curves/utils.js";

/** Operations on one source group (written additively). */
export interface GroupOps<P> {
  readonly base: P;
  readonly zero: P;
  /** Encoded length in bytes. */
  readonly bytes: number;
  add(a: P, b: P): P;
  neg(a: P): P;
  /** Constant-time scalar multiplication for secret scalars (any bigint; reduced mod p). */
  mul(point: P, scalar: bigint): P;
  /** Variable-time multiplication, public scalars only. */
  mulPublic(point: P, scalar: bigint): P;
  /** Variable-time sum of scalars[i] * points[i], public scalars only. */
  msm(points: readonly P[], scalars: readonly bigint[]): P;
  eq(a: P, b: P): boolean;
  isZero(a: P): boolean;
  toBytes(a: P): Uint8Array;
  /** Strict decoder; throws Error with a reason on any invalid input. */
  fromBytes(bytes: Uint8Array): P;
}

/** Target group (written multiplicatively). */
export interface TargetOps<T> {
  readonly one: T;
  readonly bytes: number;
  mul(a: T, b: T): T;
  inv(a: T): T;
  pow(a: T, e: bigint): T;
  eq(a: T, b: T): boolean;
  toBytes(a: T): Uint8Array;
  /** Strict decoder: canonical coefficients, order exactly p. Throws Error. */
  fromBytes(bytes: Uint8Array): T;
}

export interface PairingGroup<G1, G2, GT> {
  /** Short curve name, part of domain-separation tags. */
  readonly name: string;
  /** RFC 9380 suite id for hashing to G1, e.g. "BLS12381G1_XMD:SHA-256_SSWU_RO_". */
  readonly hashToG1Suite: string;
  /** Prime group order p. */
  readonly order: bigint;
  /** Bytes of a scalar encoding (big-endian). */
  readonly scalarBytes: number;
  readonly g1: GroupOps<G1>;
  readonly g2: GroupOps<G2>;
  readonly gt: TargetOps<GT>;
  /** Hash to G1 (random-oracle construction) under a domain-separation tag. */
  hashToG1(msg: Uint8Array, dst: string): G1;
  /** Product of pairings prod e(P_i, Q_i) with one shared final exponentiation. */
  pairingProduct(pairs: readonly (readonly [G1, G2])[]): GT;
}

// ---------------------------------------------------------------------------------------------
// BLS12-381 instance

type G1P = InstanceType<typeof bls12_381.G1.Point>;
type G2P = InstanceType<typeof bls12_381.G2.Point>;
type Fp12 = ReturnType<typeof bls12_381.fields.Fp12.pow>;

const Fp12 = bls12_381.fields.Fp12;
const ORDER = bls12_381.fields.Fr.ORDER;
const HALF_ORDER = ORDER >> 1n;

function modp(s: bigint): bigint {
  const r = s % ORDER;
  return r < 0n ? r + ORDER : r;
}

function makeOps<P extends G1P | G2P>(
  Point: typeof bls12_381.G1.Point | typeof bls12_381.G2.Point,
  bytes: number,
  label: string,
): GroupOps<P> {
  // The two constructors share their method shapes; one cast keeps the rest typed.
  const C = Point as unknown as {
    BASE: P;
    ZERO: P;
    fromBytes(b: Uint8Array): P;
  };
  const msmFn = pippenger as unknown as (c: unknown, points: P[], scalars: bigint[]) => P;
  const strausFn = mulAddUnsafe as unknown as (c: unknown, points: P[], scalars: bigint[]) => P;
  const ops: GroupOps<P> = {
    base: C.BASE,
    zero: C.ZERO,
    bytes,
    add: (a, b) => a.add(b as never) as P,
    neg: (a) => a.negate() as P,
    mul(point, scalar) {
      const s = modp(scalar);
      return s === 0n ? C.ZERO : (point.multiply(s) as P);
    },
    mulPublic(point, scalar) {
      const s = modp(scalar);
      return s === 0n ? C.ZERO : (point.multiplyUnsafe(s) as P);
    },
    msm(points, scalars) {
      if (points.length !== scalars.length) throw new Error(`${label} msm: length mismatch`);
      // Coefficient 1 (every AND/OR reconstruction coefficient) costs one addition; the rest
      // go to Strauss-Shamir (few points) or Pippenger (many).
      let acc = C.ZERO;
      const ps: P[] = [];
      const ss: bigint[] = [];
      for (let i = 0; i < points.length; i++) {
        let s = modp(scalars[i]!);
        let pt = points[i]!;
        if (s === 0n) continue;
        // Signed digits: s > p/2 is -(p - s), so small negative coefficients stay short.
        if (s > HALF_ORDER) {
          s = ORDER - s;
          pt = pt.negate() as P;
        }
        if (s === 1n) acc = acc.add(pt as never) as P;
        else {
          ps.push(pt);
          ss.push(s);
        }
      }
      if (ps.length === 0) return acc;
      // Measured here: Strauss-Shamir beats Pippenger up to ~64 points of 255 bits.
      const rest = ps.length <= 48 ? strausFn(Point, ps, ss) : msmFn(Point, ps, ss);
      return acc.add(rest as never) as P;
    },
    eq: (a, b) => a.equals(b as never),
    isZero: (a) => a.is0(),
    toBytes: (a) => a.toBytes(true),
    fromBytes(b) {
      if (!(b instanceof Uint8Array) || b.length !== bytes) {
        throw new Error(`${label}: expected ${bytes} bytes`);
      }
      let p: P;
      try {
        p = C.fromBytes(b);
      } catch (e) {
        throw new Error(`${label}: ${(e as Error).message}`);
      }
      // noble's fromBytes ran assertValidity(): on the curve and isTorsionFree() (subgroup).
      if (p.is0()) throw new Error(`${label}: identity element not allowed`);
      if (!equalBytes(p.toBytes(true), b)) throw new Error(`${label}: non-canonical encoding`);
      return p;
    },
  };
  return ops;
}

const g1Ops = makeOps<G1P>(bls12_381.G1.Point, 48, "G1");
const g2Ops = makeOps<G2P>(bls12_381.G2.Point, 96, "G2");

type G2Precompute = ReturnType<typeof bls12_381.utils.calcPairingPrecomputes>;
const precomputeCache = new WeakMap<G2P, G2Precompute>();
function g2Precompute(q: G2P): G2Precompute {
  let pre = precomputeCache.get(q);
  if (pre === undefined) {
    pre = bls12_381.utils.calcPairingPrecomputes(q);
    precomputeCache.set(q, pre);
  }
  return pre;
}

const gtOps: TargetOps<Fp12> = {
  one: Fp12.ONE,
  bytes: 576,
  mul: (a, b) => Fp12.mul(a, b),
  inv: (a) => Fp12.inv(a),
  pow: (a, e) => Fp12.pow(a, modp(e)),
  eq: (a, b) => Fp12.eql(a, b),
  toBytes: (a) => Fp12.toBytes(a),
  fromBytes(b) {
    if (!(b instanceof Uint8Array) || b.length !== 576) throw new Error("GT: expected 576 bytes");
    let x: Fp12;
    try {
      x = Fp12.fromBytes(b);
    } catch (e) {
      throw new Error(`GT: ${(e as Error).message}`);
    }
    if (!equalBytes(Fp12.toBytes(x), b)) throw new Error("GT: non-canonical encoding");
    if (Fp12.eql(x, Fp12.ONE)) throw new Error("GT: identity element not allowed");
    if (!Fp12.eql(Fp12.pow(x, ORDER), Fp12.ONE)) throw new Error("GT: element not of order p");
    return x;
  },
};

/** BLS12-381 (~128-bit security): the only wiring of @noble/curves into the ABE code. */
export const bls12_381Group: PairingGroup<G1P, G2P, Fp12> = {
  name: "BLS12381",
  hashToG1Suite: "BLS12381G1_XMD:SHA-256_SSWU_RO_",
  order: ORDER,
  scalarBytes: 32,
  g1: g1Ops,
  g2: g2Ops,
  gt: gtOps,
  hashToG1: (msg, dst) => bls12_381.G1.hashToCurve(msg, { DST: dst }) as G1P,
  pairingProduct(pairs) {
    // Same as noble's pairingBatch (shared Miller loop, one final exponentiation) minus its
    // per-call assertValidity() on every input: our inputs are decoded (already validated) or
    // computed from validated points. G2 line precomputations are cached per point object, so
    // a user key's sk0 is prepared once however many ciphertexts it opens.
    // e(O, Q) = e(P, O) = 1: such pairs are dropped (noble refuses the identity).
    const batch: [G2Precompute, bigint, bigint][] = [];
    for (const [p, q] of pairs) {
      if (p.is0() || q.is0()) continue;
      const { x, y } = p.toAffine();
      batch.push([g2Precompute(q), x, y]);
    }
    if (batch.length === 0) return Fp12.ONE;
    return Fp12.finalExponentiate(bls12_381.millerLoopBatch(batch));
  },
};

export type Bls12381G1 = G1P;
export type Bls12381G2 = G2P;
export type Bls12381GT = Fp12;
