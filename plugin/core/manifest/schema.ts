/**
 * The key manifest's JSON Schema (draft 2020-12), and strict validation with JSON paths.
 *
 * This object is the single source; `manifests/manifest.schema.json` is a byte-for-byte copy
 * (`JSON.stringify(MANIFEST_SCHEMA, null, 2)` plus a newline) checked by test/manifest. Every
 * object has `additionalProperties: false`. Patterns, not `format`, carry the string rules so
 * that no format plugin is needed and every validator agrees.
 *
 * Rules the schema cannot say (attribute names that are keywords or all digits, sorted
 * attributes, real calendar dates) are checked in code by {@link assertManifestShape}, with the
 * same error code and a JSON path.
 */
import Ajv2020Module from "ajv/dist/2020.js";
import type { ErrorObject, ValidateFunction } from "ajv";
import { ManifestError } from "../../errors.js";
import { isValidAttribute, MAX_ATTRIBUTE_LENGTH, MAX_KEY_ATTRIBUTES } from "../abe/policy.js";

export const MANIFEST_FORMAT = "secneuron-key-manifest";
export const MANIFEST_VERSION = 1;
export const MANIFEST_SCHEMA_ID = "https://secneuron.dev/schemas/key-manifest-v1.schema.json";

/** Lowest scrypt cost accepted in production: N = 2^15 (32 MiB with r = 8). */
export const MIN_KDF_LOG_N = 15;
/** Lowest scrypt cost the schema admits (only with the explicit `allowWeakKdf` option). */
export const SCHEMA_MIN_KDF_LOG_N = 10;
/** Highest scrypt cost admitted: N = 2^18 (256 MiB with r = 8). */
export const MAX_KDF_LOG_N = 18;
/** Upper bound on the wrapped user key's base64url text (a key with 256 attributes fits). */
export const MAX_WRAPPED_KEY_CHARS = 65536;

const HEX64 = "^[0-9a-f]{64}$";
/** Seconds-precision UTC timestamp, e.g. 2025-01-31T12:00:00Z. */
export const TIMESTAMP_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$";
export const SUBJECT_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._@+:-]{0,127}$";
/** A model name (Ollama / file style) or a `sha256:<hex>` digest of the sealed model file. */
export const MODEL_PATTERN = "^(sha256:[0-9a-f]{64}|(?!sha256:)[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255})$";
export const ATTRIBUTE_PATTERN = `^[A-Za-z0-9:_.-]{1,${MAX_ATTRIBUTE_LENGTH}}$`;

const timestamp = { type: "string", pattern: TIMESTAMP_PATTERN } as const;

export const MANIFEST_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: MANIFEST_SCHEMA_ID,
  title: "secneuron key manifest, format version 1",
  description:
    "One user's or service's key: attributes, model scope and validity window, signed by the authority's ed25519 issuer key; the CP-ABE user key inside is wrapped under a key derived from the API token. See manifests/README.md and docs/manifest-format.md.",
  type: "object",
  additionalProperties: false,
  required: [
    "format",
    "version",
    "id",
    "subject",
    "attributes",
    "issuedAt",
    "notBefore",
    "authority",
    "tokenSha256",
    "userKey",
    "signature",
  ],
  properties: {
    format: { const: MANIFEST_FORMAT },
    version: { const: MANIFEST_VERSION },
    id: { description: "Random manifest id: 16 bytes, lowercase hex.", type: "string", pattern: "^[0-9a-f]{32}$" },
    subject: { description: "Who holds the key (user, team or service name).", type: "string", pattern: SUBJECT_PATTERN },
    attributes: {
      description: "CP-ABE attributes of the user key, sorted ascending, unique.",
      type: "array",
      minItems: 1,
      maxItems: MAX_KEY_ATTRIBUTES,
      uniqueItems: true,
      items: { type: "string", pattern: ATTRIBUTE_PATTERN },
    },
    models: {
      description: "Model scope: names and/or sha256:<hex> digests. Absent: every model.",
      type: "array",
      minItems: 1,
      maxItems: 256,
      uniqueItems: true,
      items: { type: "string", pattern: MODEL_PATTERN },
    },
    issuedAt: { description: "When the manifest was issued (UTC).", ...timestamp },
    notBefore: { description: "Not valid before this instant (UTC, inclusive).", ...timestamp },
    expires: { description: "Not valid from this instant on (UTC, exclusive). Absent: never expires.", ...timestamp },
    authority: {
      type: "object",
      additionalProperties: false,
      required: ["fingerprint", "issuerKey"],
      properties: {
        fingerprint: { description: "SHA-256 of the CP-ABE public parameters, hex.", type: "string", pattern: HEX64 },
        issuerKey: { description: "ed25519 public key of the issuer, hex.", type: "string", pattern: HEX64 },
      },
    },
    tokenSha256: { description: "SHA-256 of the UTF-8 API token, hex (lookup only).", type: "string", pattern: HEX64 },
    userKey: {
      description: "The CP-ABE user key, wrapped under a key derived from the API token.",
      type: "object",
      additionalProperties: false,
      required: ["kdf", "aead", "ciphertext"],
      properties: {
        kdf: {
          type: "object",
          additionalProperties: false,
          required: ["name", "logN", "r", "p", "salt"],
          properties: {
            name: { const: "scrypt" },
            logN: { type: "integer", minimum: SCHEMA_MIN_KDF_LOG_N, maximum: MAX_KDF_LOG_N },
            r: { const: 8 },
            p: { const: 1 },
            salt: { description: "16 random bytes, hex.", type: "string", pattern: "^[0-9a-f]{32}$" },
          },
        },
        aead: {
          type: "object",
          additionalProperties: false,
          required: ["name", "nonce"],
          properties: {
            name: { const: "aes-256-gcm" },
            nonce: { description: "12 random bytes, hex.", type: "string", pattern: "^[0-9a-f]{24}$" },
          },
        },
        ciphertext: {
          description: "AEAD ciphertext of the encoded user key, tag appended, base64url without padding.",
          type: "string",
          minLength: 24,
          maxLength: MAX_WRAPPED_KEY_CHARS,
          pattern: "^[A-Za-z0-9_-]+$",
        },
      },
    },
    signature: {
      description: "ed25519 signature over the canonical encoding (docs/manifest-format.md), hex.",
      type: "string",
      pattern: "^[0-9a-f]{128}$",
    },
  },
} as const;

// ---------------------------------------------------------------------------------------------

/** Converts a JSON Pointer ("/a/0/b") into a JSONPath ("$.a[0].b"). */
export function pointerToPath(pointer: string): string {
  if (pointer === "") return "$";
  let out = "$";
  for (const raw of pointer.slice(1).split("/")) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^[0-9]+$/.test(seg)) out += `[${seg}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(seg)) out += `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function escapePointer(s: string): string {
  return s.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** One schema violation: where (JSON Pointer and JSONPath), which rule, what is wrong. */
export interface SchemaViolation {
  readonly pointer: string;
  readonly path: string;
  readonly keyword: string;
  readonly message: string;
}

type AjvCtor = new (opts: Record<string, unknown>) => { compile(schema: unknown): ValidateFunction };
let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (!compiled) {
    const mod = Ajv2020Module as unknown as { default?: AjvCtor } & AjvCtor;
    const Ajv = (mod.default ?? mod) as AjvCtor;
    compiled = new Ajv({ allErrors: true, strict: true, allowUnionTypes: false }).compile(MANIFEST_SCHEMA);
  }
  return compiled;
}

function describe(e: ErrorObject): SchemaViolation {
  let pointer = e.instancePath;
  let message = e.message ?? "is invalid";
  const p = e.params as Record<string, unknown>;
  if (e.keyword === "required") {
    pointer += `/${escapePointer(String(p.missingProperty))}`;
    message = "is required but missing";
  } else if (e.keyword === "additionalProperties") {
    pointer += `/${escapePointer(String(p.additionalProperty))}`;
    message = "is not allowed (unknown field)";
  } else if (e.keyword === "const") {
    message = `must be ${JSON.stringify(p.allowedValue)}`;
  } else if (e.keyword === "pattern") {
    message = `does not match ${String(p.pattern)}`;
  }
  return { pointer, path: pointerToPath(pointer), keyword: e.keyword, message };
}

/** Checks `value` against {@link MANIFEST_SCHEMA}; returns every violation (empty when valid). */
export function manifestSchemaViolations(value: unknown): SchemaViolation[] {
  const validate = validator();
  if (validate(value)) return [];
  const seen = new Set<string>();
  const out: SchemaViolation[] = [];
  for (const e of validate.errors ?? []) {
    const v = describe(e);
    const k = `${v.pointer}\0${v.keyword}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(v);
    }
  }
  // Most specific (deepest) first, then document order as reported.
  return out.sort((a, b) => b.pointer.split("/").length - a.pointer.split("/").length);
}

function schemaError(violations: SchemaViolation[]): ManifestError {
  const first = violations[0]!;
  const more = violations.length > 1 ? ` (and ${violations.length - 1} more)` : "";
  return new ManifestError("MANIFEST_SCHEMA", `${first.path}: ${first.message}${more}`, {
    path: first.path,
    pointer: first.pointer,
    keyword: first.keyword,
    violations,
  });
}

/** True if `s` matches {@link TIMESTAMP_PATTERN} and names a real instant (no 2025-02-30). */
export function isValidTimestamp(s: string): boolean {
  if (!new RegExp(TIMESTAMP_PATTERN).test(s)) return false;
  const ms = Date.parse(s);
  return Number.isFinite(ms) && new Date(ms).toISOString().replace(/\.000Z$/, "Z") === s;
}

/**
 * Validates a parsed manifest: format and version first (MANIFEST_UNSUPPORTED_VERSION), then
 * the schema and the rules beyond it (MANIFEST_SCHEMA, with `details.path`). Pure.
 */
export function assertManifestShape(value: unknown): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw schemaError([{ pointer: "", path: "$", keyword: "type", message: "must be a JSON object" }]);
  }
  const o = value as Record<string, unknown>;
  if (o.format !== undefined && o.format !== MANIFEST_FORMAT) {
    throw new ManifestError("MANIFEST_UNSUPPORTED_VERSION", `$.format: expected ${JSON.stringify(MANIFEST_FORMAT)}, found ${JSON.stringify(o.format)}`, {
      path: "$.format",
      pointer: "/format",
      found: o.format,
    });
  }
  if (o.version !== undefined && o.version !== MANIFEST_VERSION) {
    throw new ManifestError(
      "MANIFEST_UNSUPPORTED_VERSION",
      `$.version: manifest format version ${JSON.stringify(o.version)} is not supported (this build reads version ${MANIFEST_VERSION})`,
      { path: "$.version", pointer: "/version", found: o.version, supported: [MANIFEST_VERSION] },
    );
  }
  const violations = manifestSchemaViolations(value);
  if (violations.length) throw schemaError(violations);

  const extra: SchemaViolation[] = [];
  const attrs = o.attributes as string[];
  attrs.forEach((a, i) => {
    const pointer = `/attributes/${i}`;
    if (!isValidAttribute(a)) {
      extra.push({ pointer, path: pointerToPath(pointer), keyword: "attribute", message: `${JSON.stringify(a)} is not a valid attribute name (all digits or a keyword)` });
    } else if (i > 0 && !(attrs[i - 1]! < a)) {
      extra.push({ pointer, path: pointerToPath(pointer), keyword: "sorted", message: "attributes must be sorted ascending (by code point) and unique" });
    }
  });
  for (const f of ["issuedAt", "notBefore", "expires"] as const) {
    const s = o[f];
    if (typeof s === "string" && !isValidTimestamp(s)) {
      extra.push({ pointer: `/${f}`, path: `$.${f}`, keyword: "timestamp", message: `${JSON.stringify(s)} is not a real UTC instant` });
    }
  }
  if (!extra.length && typeof o.expires === "string" && Date.parse(o.expires) <= Date.parse(o.notBefore as string)) {
    extra.push({ pointer: "/expires", path: "$.expires", keyword: "window", message: "must be later than notBefore" });
  }
  if (extra.length) throw schemaError(extra);
}
