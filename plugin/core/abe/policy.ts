/**
 * CP-ABE access policies: parser, canonical printer, LSSS compiler and reconstruction.
 *
 * Grammar (EBNF; keywords are case-insensitive, whitespace is ignored between tokens):
 *
 *   policy     = or-expr ;
 *   or-expr    = and-expr , { ( "or" | "||" ) , and-expr } ;
 *   and-expr   = primary , { ( "and" | "&&" ) , primary } ;
 *   primary    = attribute | "(" , or-expr , ")" | threshold ;
 *   threshold  = number , "of" , "(" , or-expr , { "," , or-expr } , ")" ;
 *   number     = digit , { digit } ;
 *   attribute  = attr-char , { attr-char } ;          (not all digits, not a keyword)
 *   attr-char  = "A".."Z" | "a".."z" | "0".."9" | ":" | "_" | "-" | "." ;
 *
 * `and` binds tighter than `or`. Attribute names are case-sensitive (`tier:Pro` != `tier:pro`);
 * the words `and`, `or`, `of` (any case) are reserved and a word made only of digits is a number.
 *
 * Canonical form (what {@link printPolicy} writes and what ciphertexts carry): nested gates of the
 * same kind are flattened, `1 of (...)` becomes `or`, `n of (n children)` becomes `and`, a gate
 * with one child is that child, keywords are lower case, one space around them, parentheses only
 * where precedence needs them, thresholds as `k of (x, y, z)`. Child order is kept as written.
 *
 * Each attribute may occur at most once per policy: FAME's ciphertext rows carry no per-row
 * randomness, and two rows with the same attribute would let anyone divide them and strip the
 * attribute part (see docs/cp-abe.md). `(a and b) or (a and c)` must be written `a and (b or c)`.
 *
 * LSSS: the Lewko-Waters construction generalised to thresholds. The root gets the vector (1);
 * a counter c holds the number of columns used so far.
 *   - OR  (1-of-n): every child gets the parent vector v.
 *   - AND (n-of-n): a chain with n-1 fresh columns c+1..c+n-1: child 1 gets v + e(c+1),
 *     child i (1<i<n) gets -e(c+i-1) + e(c+i), child n gets -e(c+n-1). The children sum to v,
 *     so every reconstruction coefficient of an AND/OR policy is 1 (decryption needs only
 *     point additions).
 *   - k-of-n (1<k<n): Vandermonde rows with k-1 fresh columns: child i (i = 1..n) gets
 *     v + sum_{j=1..k-1} i^j e(c+j). Any k children recombine to v with the Lagrange
 *     coefficients at 0 of the points x = i; fewer than k span nothing containing v.
 * Leaves become rows (vectors padded with zeros to the final column count), in depth-first,
 * left-to-right order. The target vector is (1, 0, ..., 0).
 */
import { PolicyError } from "../../errors.js";

/** Largest policy text accepted, in characters. */
export const MAX_POLICY_LENGTH = 4096;
/** Most attribute occurrences (LSSS rows) in one policy. */
export const MAX_POLICY_ATTRIBUTES = 128;
/** Deepest nesting of parentheses / gates. */
export const MAX_POLICY_DEPTH = 32;
/** Most attributes in one user key. */
export const MAX_KEY_ATTRIBUTES = 256;
/** Longest attribute name, in characters (= bytes: the charset is ASCII). */
export const MAX_ATTRIBUTE_LENGTH = 128;

const ATTR_CHAR = /[A-Za-z0-9:_.\-]/;
const ATTRIBUTE_RE = /^[A-Za-z0-9:_.\-]{1,128}$/;
const KEYWORDS = new Set(["and", "or", "of"]);

export type PolicyNode =
  | { readonly kind: "attr"; readonly name: string }
  | { readonly kind: "and"; readonly children: readonly PolicyNode[] }
  | { readonly kind: "or"; readonly children: readonly PolicyNode[] }
  | { readonly kind: "threshold"; readonly k: number; readonly children: readonly PolicyNode[] };

/** Monotone span program: rows[i] (length `columns`) is labelled with attribute rowAttributes[i]. */
export interface Lsss {
  readonly rows: readonly (readonly bigint[])[];
  readonly rowAttributes: readonly string[];
  readonly columns: number;
}

/**
 * Reconstruction: sum over j of coefficients[j] * rows[rowIndices[j]] = (1, 0, ..., 0) mod p.
 * The same coefficients as exact rationals over a common denominator:
 * coefficients[j] = integerCoefficients[j] / denominator (mod p), denominator > 0. AND/OR-only
 * policies have integerCoefficients all 1 and denominator 1; thresholds give small integers
 * (binomial-like Lagrange numerators), which decryption can use as short scalars.
 */
export interface Reconstruction {
  readonly rowIndices: readonly number[];
  readonly coefficients: readonly bigint[];
  readonly integerCoefficients: readonly bigint[];
  readonly denominator: bigint;
}

/** True if `name` is a valid attribute name (charset, length, not a number or keyword). */
export function isValidAttribute(name: string): boolean {
  return (
    typeof name === "string" &&
    ATTRIBUTE_RE.test(name) &&
    !/^[0-9]+$/.test(name) &&
    !KEYWORDS.has(name.toLowerCase())
  );
}

/** Throws PolicyError("policy-invalid-attribute") unless `name` is a valid attribute name. */
export function assertAttribute(name: unknown, where = "attribute"): asserts name is string {
  if (typeof name !== "string" || !isValidAttribute(name)) {
    const shown = typeof name === "string" ? JSON.stringify(name.slice(0, 40)) : typeof name;
    throw new PolicyError(
      "policy-invalid-attribute",
      `${where}: invalid attribute name ${shown}: expected 1-${MAX_ATTRIBUTE_LENGTH} characters ` +
        `from [A-Za-z0-9:_.-], not all digits, not and/or/of`,
      { attribute: typeof name === "string" ? name.slice(0, 200) : undefined },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Lexer

type TokenKind = "(" | ")" | "," | "and" | "or" | "of" | "number" | "attr" | "end";
interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  readonly pos: number;
}

function syntaxError(pos: number, message: string, code = "policy-syntax"): PolicyError {
  return new PolicyError(code, `policy syntax error at offset ${pos}: ${message}`, { position: pos });
}

function describe(t: Token): string {
  if (t.kind === "end") return "end of policy";
  return JSON.stringify(t.text);
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      i++;
      continue;
    }
    if (ch === "(" || ch === ")" || ch === ",") {
      out.push({ kind: ch, text: ch, pos: i });
      i++;
      continue;
    }
    if (ch === "&" || ch === "|") {
      if (src[i + 1] !== ch) throw syntaxError(i, `expected "${ch}${ch}", found ${JSON.stringify(ch)}`);
      out.push({ kind: ch === "&" ? "and" : "or", text: ch + ch, pos: i });
      i += 2;
      continue;
    }
    if (ATTR_CHAR.test(ch)) {
      const start = i;
      while (i < src.length && ATTR_CHAR.test(src[i]!)) i++;
      const text = src.slice(start, i);
      const lower = text.toLowerCase();
      if (KEYWORDS.has(lower)) out.push({ kind: lower as "and" | "or" | "of", text, pos: start });
      else if (/^[0-9]+$/.test(text)) out.push({ kind: "number", text, pos: start });
      else {
        if (text.length > MAX_ATTRIBUTE_LENGTH) {
          throw new PolicyError(
            "policy-invalid-attribute",
            `policy error at offset ${start}: attribute name longer than ${MAX_ATTRIBUTE_LENGTH} characters`,
            { position: start },
          );
        }
        out.push({ kind: "attr", text, pos: start });
      }
      continue;
    }
    const code = ch.codePointAt(0)!;
    const shown = code < 0x20 || code > 0x7e ? `U+${code.toString(16).toUpperCase().padStart(4, "0")}` : JSON.stringify(ch);
    throw syntaxError(i, `unexpected character ${shown} (attributes use [A-Za-z0-9:_.-])`);
  }
  out.push({ kind: "end", text: "", pos: src.length });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parser

class Parser {
  private i = 0;
  private leaves = 0;
  private readonly seen = new Map<string, number>();
  constructor(private readonly toks: Token[]) {}

  private peek(): Token {
    return this.toks[this.i]!;
  }
  private next(): Token {
    return this.toks[this.i++]!;
  }
  private expect(kind: TokenKind, what: string): Token {
    const t = this.peek();
    if (t.kind !== kind) throw syntaxError(t.pos, `expected ${what}, found ${describe(t)}`);
    return this.next();
  }

  parse(): PolicyNode {
    const node = this.orExpr(0);
    const t = this.peek();
    if (t.kind !== "end") {
      const hint = t.kind === ")" ? "unbalanced \")\"" : `expected "and", "or" or end of policy, found ${describe(t)}`;
      throw syntaxError(t.pos, hint);
    }
    return node;
  }

  private orExpr(depth: number): PolicyNode {
    const children = [this.andExpr(depth)];
    while (this.peek().kind === "or") {
      this.next();
      children.push(this.andExpr(depth));
    }
    return makeGate("or", children);
  }

  private andExpr(depth: number): PolicyNode {
    const children = [this.primary(depth)];
    while (this.peek().kind === "and") {
      this.next();
      children.push(this.primary(depth));
    }
    return makeGate("and", children);
  }

  private enter(depth: number, pos: number): number {
    if (depth + 1 > MAX_POLICY_DEPTH) {
      throw new PolicyError(
        "policy-too-deep",
        `policy error at offset ${pos}: nesting deeper than ${MAX_POLICY_DEPTH} levels`,
        { position: pos, limit: MAX_POLICY_DEPTH },
      );
    }
    return depth + 1;
  }

  private primary(depth: number): PolicyNode {
    const t = this.peek();
    switch (t.kind) {
      case "attr": {
        this.next();
        const prev = this.seen.get(t.text);
        if (prev !== undefined) {
          throw new PolicyError(
            "policy-duplicate-attribute",
            `policy error at offset ${t.pos}: attribute ${JSON.stringify(t.text)} already used at offset ` +
              `${prev}; each attribute may appear once (factor it out, e.g. "a and (b or c)")`,
            { position: t.pos, firstPosition: prev, attribute: t.text },
          );
        }
        this.seen.set(t.text, t.pos);
        if (++this.leaves > MAX_POLICY_ATTRIBUTES) {
          throw new PolicyError(
            "policy-too-large",
            `policy error at offset ${t.pos}: more than ${MAX_POLICY_ATTRIBUTES} attributes`,
            { position: t.pos, limit: MAX_POLICY_ATTRIBUTES },
          );
        }
        return { kind: "attr", name: t.text };
      }
      case "(": {
        this.next();
        const inner = this.orExpr(this.enter(depth, t.pos));
        this.expect(")", `")" to close "(" at offset ${t.pos}`);
        return inner;
      }
      case "number": {
        this.next();
        const ofTok = this.peek();
        if (ofTok.kind !== "of") {
          throw syntaxError(t.pos, `${JSON.stringify(t.text)} is a number, not an attribute (a threshold is written "k of (a, b, c)")`);
        }
        this.next();
        const open = this.expect("(", `"(" after "of"`);
        const d = this.enter(depth, t.pos);
        const children = [this.orExpr(d)];
        while (this.peek().kind === ",") {
          this.next();
          children.push(this.orExpr(d));
        }
        this.expect(")", `"," or ")" to close "(" at offset ${open.pos}`);
        const k = t.text.length > 6 ? Infinity : Number.parseInt(t.text, 10);
        if (!(k >= 1 && k <= children.length)) {
          throw new PolicyError(
            "policy-bad-threshold",
            `policy error at offset ${t.pos}: threshold ${t.text} of ${children.length} ` +
              `(must be between 1 and the number of alternatives)`,
            { position: t.pos, k: t.text, n: children.length },
          );
        }
        return makeThreshold(k, children);
      }
      default:
        throw syntaxError(t.pos, `expected an attribute, "(" or "k of (...)", found ${describe(t)}`);
    }
  }
}

function makeGate(kind: "and" | "or", children: PolicyNode[]): PolicyNode {
  if (children.length === 1) return children[0]!;
  const flat: PolicyNode[] = [];
  for (const c of children) {
    if (c.kind === kind) flat.push(...c.children);
    else flat.push(c);
  }
  return { kind, children: flat };
}

function makeThreshold(k: number, children: PolicyNode[]): PolicyNode {
  if (k === 1) return makeGate("or", children);
  if (k === children.length) return makeGate("and", children);
  return { kind: "threshold", k, children };
}

/**
 * Parses a policy. Throws PolicyError with `details.position` (0-based character offset) on
 * syntax errors, duplicate attributes, bad thresholds and exceeded limits.
 */
export function parsePolicy(text: string): PolicyNode {
  if (typeof text !== "string") throw new PolicyError("policy-syntax", "policy must be a string", {});
  if (text.length > MAX_POLICY_LENGTH) {
    throw new PolicyError(
      "policy-too-large",
      `policy is ${text.length} characters long, limit ${MAX_POLICY_LENGTH}`,
      { position: MAX_POLICY_LENGTH, limit: MAX_POLICY_LENGTH },
    );
  }
  return new Parser(tokenize(text)).parse();
}

// ---------------------------------------------------------------------------------------------
// Printer and helpers

/** Canonical text of a policy (see module doc). parsePolicy(printPolicy(p)) equals p. */
export function printPolicy(node: PolicyNode): string {
  return print(node, "top");
}

function print(node: PolicyNode, ctx: "top" | "or" | "and"): string {
  switch (node.kind) {
    case "attr":
      return node.name;
    case "threshold":
      return `${node.k} of (${node.children.map((c) => print(c, "top")).join(", ")})`;
    case "and": {
      const s = node.children.map((c) => print(c, "and")).join(" and ");
      return ctx === "and" ? `(${s})` : s;
    }
    case "or": {
      const s = node.children.map((c) => print(c, "or")).join(" or ");
      return ctx === "top" ? s : `(${s})`;
    }
  }
}

/** Parses and re-prints: the canonical form of a policy text. */
export function canonicalPolicy(text: string): string {
  return printPolicy(parsePolicy(text));
}

/** Attribute names in leaf (= LSSS row) order. */
export function policyAttributes(node: PolicyNode): string[] {
  const out: string[] = [];
  const walk = (n: PolicyNode): void => {
    if (n.kind === "attr") out.push(n.name);
    else n.children.forEach(walk);
  };
  walk(node);
  return out;
}

/** Whether an attribute set satisfies the policy (boolean evaluation). */
export function satisfies(node: PolicyNode, attributes: Iterable<string>): boolean {
  const set = attributes instanceof Set ? (attributes as Set<string>) : new Set(attributes);
  const ev = (n: PolicyNode): boolean => {
    switch (n.kind) {
      case "attr":
        return set.has(n.name);
      case "and":
        return n.children.every(ev);
      case "or":
        return n.children.some(ev);
      case "threshold":
        return n.children.filter(ev).length >= n.k;
    }
  };
  return ev(node);
}

// ---------------------------------------------------------------------------------------------
// LSSS

/** Compiles a policy to its LSSS matrix (module doc). Entries are small signed integers. */
export function compileLsss(node: PolicyNode): Lsss {
  const vectors: Map<number, bigint>[] = []; // sparse: column -> value
  const rowAttributes: string[] = [];
  let c = 1;
  const walk = (n: PolicyNode, v: Map<number, bigint>): void => {
    switch (n.kind) {
      case "attr":
        vectors.push(v);
        rowAttributes.push(n.name);
        return;
      case "or":
        for (const ch of n.children) walk(ch, v);
        return;
      case "and": {
        const m = n.children.length;
        const base = c;
        c += m - 1;
        n.children.forEach((ch, idx) => {
          let u: Map<number, bigint>;
          if (idx === 0) u = new Map(v);
          else {
            u = new Map();
            u.set(base + idx - 1, -1n);
          }
          if (idx < m - 1) u.set(base + idx, 1n);
          walk(ch, u);
        });
        return;
      }
      case "threshold": {
        const base = c;
        c += n.k - 1;
        n.children.forEach((ch, idx) => {
          const x = BigInt(idx + 1);
          const u = new Map(v);
          let pw = 1n;
          for (let j = 1; j < n.k; j++) {
            pw *= x;
            u.set(base + j - 1, pw);
          }
          walk(ch, u);
        });
        return;
      }
    }
  };
  walk(node, new Map([[0, 1n]]));
  const rows = vectors.map((v) => {
    const r = new Array<bigint>(c).fill(0n);
    for (const [col, val] of v) r[col] = val;
    return r;
  });
  return { rows, rowAttributes, columns: c };
}

function modp(a: bigint, p: bigint): bigint {
  const r = a % p;
  return r < 0n ? r + p : r;
}

function invmod(a: bigint, p: bigint): bigint {
  // Extended Euclid (p prime, a != 0 mod p). Public values only.
  let [r0, r1] = [modp(a, p), p];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error("invmod: not invertible");
  return modp(s0, p);
}

/**
 * Finds the reconstruction coefficients for `attributes` over Z_p, choosing a satisfying set
 * with the fewest rows (ties: leftmost). Returns null when the attributes do not satisfy the
 * policy. Coefficients match the rows of compileLsss(node) (same depth-first order).
 */
export function findReconstruction(
  node: PolicyNode,
  attributes: Iterable<string>,
  p: bigint,
): Reconstruction | null {
  const set = attributes instanceof Set ? (attributes as Set<string>) : new Set(attributes);
  // First pass: assign row indices and the minimal number of rows needed per node.
  interface Info {
    node: PolicyNode;
    firstRow: number;
    cost: number; // Infinity if unsatisfiable
    kids: Info[];
  }
  let row = 0;
  const analyse = (n: PolicyNode): Info => {
    if (n.kind === "attr") {
      const info = { node: n, firstRow: row, cost: set.has(n.name) ? 1 : Infinity, kids: [] };
      row++;
      return info;
    }
    const firstRow = row;
    const kids = n.children.map(analyse);
    const costs = kids.map((k) => k.cost);
    let cost: number;
    if (n.kind === "and") cost = costs.reduce((a, b) => a + b, 0);
    else if (n.kind === "or") cost = Math.min(...costs);
    else cost = [...costs].sort((a, b) => a - b).slice(0, n.k).reduce((a, b) => a + b, 0);
    return { node: n, firstRow, cost, kids };
  };
  const root = analyse(node);
  if (root.cost === Infinity) return null;
  // Exact rational coefficients (num/den, den > 0, reduced); Lagrange at 0 over x = 1..n.
  const out = new Map<number, [bigint, bigint]>();
  const collect = (info: Info, num: bigint, den: bigint): void => {
    const n = info.node;
    switch (n.kind) {
      case "attr":
        out.set(info.firstRow, [num, den]);
        return;
      case "and":
        for (const k of info.kids) collect(k, num, den);
        return;
      case "or": {
        let best = info.kids[0]!;
        for (const k of info.kids) if (k.cost < best.cost) best = k;
        collect(best, num, den);
        return;
      }
      case "threshold": {
        const chosen = info.kids
          .map((k, idx) => ({ k, x: BigInt(idx + 1) }))
          .filter((e) => e.k.cost !== Infinity)
          .sort((a, b) => a.k.cost - b.k.cost || Number(a.x - b.x))
          .slice(0, n.k);
        // Lagrange coefficient at 0: prod_{j != i} x_j / (x_j - x_i).
        for (const e of chosen) {
          let ln = num;
          let ld = den;
          for (const o of chosen) {
            if (o === e) continue;
            ln *= o.x;
            ld *= o.x - e.x;
          }
          if (ld < 0n) {
            ln = -ln;
            ld = -ld;
          }
          const g = gcd(ln, ld);
          collect(e.k, ln / g, ld / g);
        }
        return;
      }
    }
  };
  collect(root, 1n, 1n);
  const rowIndices = [...out.keys()].sort((a, b) => a - b);
  const fracs = rowIndices.map((i) => out.get(i)!);
  let denominator = 1n;
  for (const [, d] of fracs) denominator = (denominator / gcd(denominator, d)) * d;
  const integerCoefficients = fracs.map(([nm, d]) => nm * (denominator / d));
  const dInv = invmod(denominator, p);
  const coefficients = integerCoefficients.map((c) => modp(c * dInv, p));
  return { rowIndices, coefficients, integerCoefficients, denominator };
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x === 0n ? 1n : x;
}
