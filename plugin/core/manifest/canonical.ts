/**
 * Canonical JSON for key manifests.
 *
 * - Signing encoding: {@link canonicalJson} of the manifest without its `signature` member:
 *   object keys sorted ascending by UTF-16 code unit (JavaScript's default sort, as RFC 8785),
 *   no whitespace, strings as `JSON.stringify` writes them, integers only (no floats, no
 *   exponents). For the values a v1 manifest can hold (ASCII strings, small integers, arrays,
 *   objects) this is exactly RFC 8785 (JCS). The signed message is the UTF-8 bytes of
 *   {@link SIGNING_DOMAIN} followed by that text.
 * - File form: {@link canonicalFileText}: the same sorted value (signature included) indented
 *   with two spaces, plus one trailing newline. A manifest file must be byte-identical to the
 *   file form of what it parses to, so any edit, even whitespace, is detected.
 */
import { ManifestError } from "../../errors.js";

/** Prefix of the signed bytes: separates manifest signatures from any other use of the key. */
export const SIGNING_DOMAIN = "secneuron-key-manifest-v1\n";

function sortValue(value: unknown, path: string): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new ManifestError("MANIFEST_NOT_CANONICAL", `${path}: only safe integers can be encoded canonically, found ${value}`, { path });
    }
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => sortValue(v, `${path}[${i}]`));
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new ManifestError("MANIFEST_NOT_CANONICAL", `${path}: not a plain JSON object`, { path });
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value as object).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v === undefined) continue;
      // defineProperty: a "__proto__" key stays a key instead of setting the prototype.
      Object.defineProperty(out, k, { value: sortValue(v, `${path}.${k}`), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  throw new ManifestError("MANIFEST_NOT_CANONICAL", `${path}: ${typeof value} has no JSON encoding`, { path });
}

/** Sorted-key, whitespace-free JSON (RFC 8785 for integer/string/array/object values). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortValue(value, "$"));
}

/** The file form of a manifest: sorted keys, two-space indent, one trailing newline. */
export function canonicalFileText(value: unknown): string {
  return `${JSON.stringify(sortValue(value, "$"), null, 2)}\n`;
}

/** The bytes the issuer signs: SIGNING_DOMAIN + canonicalJson(manifest minus `signature`). */
export function signingBytes(manifest: object): Uint8Array {
  const { signature: _omit, ...unsigned } = manifest as Record<string, unknown>;
  return new TextEncoder().encode(SIGNING_DOMAIN + canonicalJson(unsigned));
}
