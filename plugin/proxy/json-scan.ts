/**
 * A small scanner over JSON text that JSON.parse has already accepted: it finds keys that
 * collide in one object. JSON.parse keeps the LAST of duplicated keys; Go's encoding/json (which
 * Ollama uses) also matches struct fields CASE-INSENSITIVELY (Unicode simple folding: `MODEL`,
 * `Model`, and `ſ`/`K` (U+017F, U+212A) forms all land on the same field). Two keys that fold
 * to the same string in one object are therefore ambiguous and the request is refused.
 */

/** Go encoding/json field-name folding (foldName), approximated per code point. */
export function goFoldKey(key: string): string {
  let out = "";
  for (const ch of key) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) {
      out += c >= 0x61 && c <= 0x7a ? String.fromCharCode(c - 0x20) : ch;
      continue;
    }
    const lower = ch.toLowerCase();
    const upper = lower.toUpperCase();
    out += [...upper].length === 1 ? upper : lower;
  }
  return out;
}

export interface DuplicateKey {
  /** JSON path of the object holding the keys, e.g. `$.options`. */
  path: string;
  first: string;
  second: string;
}

export const MAX_JSON_DEPTH = 512;

/**
 * The first pair of colliding keys (Go folding) in any object of `text`, or null.
 * Throws RangeError when nesting exceeds `maxDepth`. `text` must be valid JSON.
 */
export function findDuplicateKey(text: string, maxDepth = MAX_JSON_DEPTH): DuplicateKey | null {
  // stack entries: object -> Map(folded -> original) + path; array -> null map
  const stack: { keys: Map<string, string> | null; path: string; index: number; lastKey: string }[] = [];
  let expectKey = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      let j = i + 1;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === 0x5c /* \ */) j += 2;
        else if (c === 0x22) break;
        else j++;
      }
      const top = stack[stack.length - 1];
      if (expectKey && top && top.keys) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        const folded = goFoldKey(key);
        const prev = top.keys.get(folded);
        if (prev !== undefined) return { path: top.path, first: prev, second: key };
        top.keys.set(folded, key);
        top.lastKey = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      if (stack.length >= maxDepth) throw new RangeError(`JSON nesting deeper than ${maxDepth}`);
      const parent = stack[stack.length - 1];
      let path = "$";
      if (parent) path = parent.keys ? `${parent.path}.${parent.lastKey}` : `${parent.path}[${parent.index}]`;
      stack.push({ keys: ch === 0x7b ? new Map() : null, path, index: 0, lastKey: "" });
      expectKey = ch === 0x7b;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (ch === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top) {
        if (top.keys) expectKey = true;
        else top.index++;
      }
    }
    i++;
  }
  return null;
}
