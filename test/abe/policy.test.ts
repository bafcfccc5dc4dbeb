import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PolicyError } from "../../plugin/errors.js";
import { bls12_381Group } from "../../plugin/core/abe/group.js";
import {
  assertAttribute,
  canonicalPolicy,
  compileLsss,
  findReconstruction,
  isValidAttribute,
  MAX_POLICY_ATTRIBUTES,
  MAX_POLICY_DEPTH,
  MAX_POLICY_LENGTH,
  parsePolicy,
  policyAttributes,
  printPolicy,
  satisfies,
} from "../../plugin/core/abe/policy.js";
import { ATTR_POOL, countLeaves, rawPolicyArb, renderPolicy } from "./helpers.js";

const P = bls12_381Group.order;
const mod = (x: bigint) => ((x % P) + P) % P;

function policyError(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    return e as PolicyError;
  }
  throw new Error("expected a PolicyError");
}

describe("policy parser", () => {
  it("parses attributes, and/or precedence, thresholds, keyword spellings", () => {
    expect(parsePolicy("task:code")).toEqual({ kind: "attr", name: "task:code" });
    expect(canonicalPolicy("a or b and c")).toBe("a or b and c");
    expect(parsePolicy("a or b and c")).toEqual({
      kind: "or",
      children: [{ kind: "attr", name: "a" }, { kind: "and", children: [{ kind: "attr", name: "b" }, { kind: "attr", name: "c" }] }],
    });
    expect(canonicalPolicy("(a OR b) && c")).toBe("(a or b) and c");
    expect(canonicalPolicy("a || (b || c)")).toBe("a or b or c");
    expect(canonicalPolicy("((a)) AnD (b and (c))")).toBe("a and b and c");
    expect(canonicalPolicy("2 OF (task:code, tier:pro, admin)")).toBe("2 of (task:code, tier:pro, admin)");
    expect(canonicalPolicy("1 of (a, b)")).toBe("a or b");
    expect(canonicalPolicy("3 of (a, b, c and d)")).toBe("a and b and c and d");
    expect(canonicalPolicy("1 of (a)")).toBe("a");
    expect(canonicalPolicy("x and 2 of (a or b, c, d)")).toBe("x and 2 of (a or b, c, d)");
    expect(canonicalPolicy(" \n\t(task:code or task:math)\n and tier:pro ")).toBe("(task:code or task:math) and tier:pro");
  });

  it("is case-sensitive for attributes, not for keywords", () => {
    expect(canonicalPolicy("Tier:Pro and tier:pro")).toBe("Tier:Pro and tier:pro");
    expect(policyError(() => parsePolicy("AND")).details.position).toBe(0);
  });

  it("validates attribute names", () => {
    for (const ok of ["admin", "task:code", "org.acme-1", "_x", "9a", "a:b:c", "x".repeat(128)]) expect(isValidAttribute(ok)).toBe(true);
    for (const bad of ["", "12", "and", "Or", "OF", "a b", "é", "a/b", "x".repeat(129), "a\u0000"]) expect(isValidAttribute(bad)).toBe(false);
    expect(() => assertAttribute("a b")).toThrow(PolicyError);
  });

  const errors: [string, number, string, RegExp][] = [
    ["", 0, "policy-syntax", /expected an attribute.*end of policy/],
    ["a and", 5, "policy-syntax", /expected an attribute/],
    ["a or or b", 5, "policy-syntax", /found "or"/],
    ["(a and b", 8, "policy-syntax", /"\)" to close "\(" at offset 0/],
    ["a and b)", 7, "policy-syntax", /unbalanced/],
    ["a b", 2, "policy-syntax", /found "b"/],
    ["a & b", 2, "policy-syntax", /expected "&&"/],
    ["a | b", 2, "policy-syntax", /expected "\|\|"/],
    ["a and $b", 6, "policy-syntax", /unexpected character "\$"/],
    ["a and é", 6, "policy-syntax", /U\+00E9/],
    ["12 and a", 0, "policy-syntax", /is a number/],
    ["2 of a, b", 5, "policy-syntax", /"\(" after "of"/],
    ["2 of (a b)", 8, "policy-syntax", /"," or "\)"/],
    ["3 of (a, b)", 0, "policy-bad-threshold", /threshold 3 of 2/],
    ["0 of (a, b)", 0, "policy-bad-threshold", /threshold 0 of 2/],
    ["x or 99999999999 of (a, b)", 5, "policy-bad-threshold", /between 1/],
    ["a and (b or a)", 12, "policy-duplicate-attribute", /already used at offset 0/],
    ["2 of (a, b, c) or c", 18, "policy-duplicate-attribute", /"c" already used at offset 12/],
    [`a and ${"x".repeat(129)}`, 6, "policy-invalid-attribute", /longer than 128/],
  ];
  for (const [text, pos, code, re] of errors) {
    it(`rejects ${JSON.stringify(text.slice(0, 30))} at offset ${pos} (${code})`, () => {
      const e = policyError(() => parsePolicy(text));
      expect(e.code).toBe(code);
      expect(e.details.position).toBe(pos);
      expect(e.message).toMatch(re);
      expect(e.message).toContain(`offset ${pos}`);
    });
  }

  it("enforces size, attribute count and depth limits", () => {
    const long = "a".repeat(10) + " or ".repeat(0) + " ".repeat(MAX_POLICY_LENGTH);
    expect(policyError(() => parsePolicy(long)).code).toBe("policy-too-large");
    const many = Array.from({ length: MAX_POLICY_ATTRIBUTES + 1 }, (_, i) => `a${i}`).join(" or ");
    const e = policyError(() => parsePolicy(many));
    expect(e.code).toBe("policy-too-large");
    expect(e.details.position).toBe(many.lastIndexOf("a"));
    const okMany = Array.from({ length: MAX_POLICY_ATTRIBUTES }, (_, i) => `a${i}`).join(" or ");
    expect(compileLsss(parsePolicy(okMany)).rows.length).toBe(MAX_POLICY_ATTRIBUTES);
    const deep = "(".repeat(MAX_POLICY_DEPTH + 1) + "a" + ")".repeat(MAX_POLICY_DEPTH + 1);
    const d = policyError(() => parsePolicy(deep));
    expect(d.code).toBe("policy-too-deep");
    expect(d.details.position).toBe(MAX_POLICY_DEPTH);
    const okDeep = "(".repeat(MAX_POLICY_DEPTH) + "a" + ")".repeat(MAX_POLICY_DEPTH);
    expect(canonicalPolicy(okDeep)).toBe("a");
    // A pathological input does not blow the stack: it is refused early.
    expect(policyError(() => parsePolicy("(".repeat(4000))).code).toBe("policy-too-deep");
  });

  it("round-trips: canonical text parses back to the same tree, printing is idempotent", () => {
    fc.assert(
      fc.property(rawPolicyArb(12), fc.nat(), (raw, variant) => {
        const names = ATTR_POOL.slice(0, countLeaves(raw));
        const text = renderPolicy(raw, names, variant);
        const node = parsePolicy(text);
        const canon = printPolicy(node);
        expect(parsePolicy(canon)).toEqual(node);
        expect(printPolicy(parsePolicy(canon))).toBe(canon);
        expect(policyAttributes(node)).toEqual(names);
      }),
      { numRuns: 300 },
    );
  });
});

describe("LSSS", () => {
  it("compiles AND/OR with Lewko-Waters rows and thresholds with Vandermonde rows", () => {
    expect(compileLsss(parsePolicy("a"))).toEqual({ rows: [[1n]], rowAttributes: ["a"], columns: 1 });
    expect(compileLsss(parsePolicy("a or b"))).toEqual({ rows: [[1n], [1n]], rowAttributes: ["a", "b"], columns: 1 });
    expect(compileLsss(parsePolicy("a and b and c")).rows).toEqual([
      [1n, 1n, 0n],
      [0n, -1n, 1n],
      [0n, 0n, -1n],
    ]);
    expect(compileLsss(parsePolicy("2 of (a, b, c)")).rows).toEqual([
      [1n, 1n],
      [1n, 2n],
      [1n, 3n],
    ]);
    expect(compileLsss(parsePolicy("3 of (a, b, c, d)")).rows).toEqual([
      [1n, 1n, 1n],
      [1n, 2n, 4n],
      [1n, 3n, 9n],
      [1n, 4n, 16n],
    ]);
  });

  it("reconstruction exists exactly when the attributes satisfy the policy and recombines to (1,0,...,0)", () => {
    fc.assert(
      fc.property(rawPolicyArb(14), fc.nat(), fc.array(fc.boolean(), { minLength: 18, maxLength: 18 }), (raw, variant, mask) => {
        const names = ATTR_POOL.slice(0, countLeaves(raw));
        const node = parsePolicy(renderPolicy(raw, names, variant));
        const held = ATTR_POOL.filter((_, i) => mask[i]);
        const lsss = compileLsss(node);
        const rec = findReconstruction(node, held, P);
        expect(rec !== null).toBe(satisfies(node, held));
        if (rec === null) return;
        const sum = new Array<bigint>(lsss.columns).fill(0n);
        rec.rowIndices.forEach((r, j) => {
          expect(held).toContain(lsss.rowAttributes[r]);
          lsss.rows[r]!.forEach((v, c) => (sum[c] = mod(sum[c]! + v * rec.coefficients[j]!)));
        });
        expect(sum).toEqual([1n, ...new Array<bigint>(lsss.columns - 1).fill(0n)]);
        // Exact rational form agrees: coefficient = integerCoefficient / denominator (mod p).
        expect(rec.denominator > 0n).toBe(true);
        rec.coefficients.forEach((c, j) => expect(mod(c * rec.denominator)).toBe(mod(rec.integerCoefficients[j]!)));
      }),
      { numRuns: 400 },
    );
  });

  it("uses coefficient 1 for AND/OR policies and the fewest rows", () => {
    const node = parsePolicy("(a and b and c) or d or (e and f)");
    const rec = findReconstruction(node, ["a", "b", "c", "d", "e", "f"], P)!;
    expect(rec.rowIndices).toEqual([3]);
    expect(rec.coefficients).toEqual([1n]);
    expect(rec.integerCoefficients).toEqual([1n]);
    expect(rec.denominator).toBe(1n);
    const rec2 = findReconstruction(node, ["a", "b", "c", "e", "f"], P)!;
    expect(rec2.rowIndices).toEqual([4, 5]);
    expect(rec2.coefficients).toEqual([1n, 1n]);
  });

  it("threshold coefficients are small integers over a common denominator", () => {
    // x = 1..4 chosen: Lagrange coefficients at 0 are (-1)^(i+1) C(4, i), denominator 1.
    const all = findReconstruction(parsePolicy("4 of (a, b, c, d, e)"), ["a", "b", "c", "d"], P)!;
    expect(all.integerCoefficients).toEqual([4n, -6n, 4n, -1n]);
    expect(all.denominator).toBe(1n);
    // x = 1, 3: lambda_1 = 3/2, lambda_3 = -1/2.
    const some = findReconstruction(parsePolicy("2 of (a, b, c)"), ["a", "c"], P)!;
    expect(some.integerCoefficients).toEqual([3n, -1n]);
    expect(some.denominator).toBe(2n);
  });

  it("threshold with fewer than k attributes is unsatisfied", () => {
    const node = parsePolicy("3 of (a, b, c, d, e)");
    expect(findReconstruction(node, ["a", "e"], P)).toBeNull();
    expect(findReconstruction(node, ["a", "c", "e"], P)).not.toBeNull();
  });
});
