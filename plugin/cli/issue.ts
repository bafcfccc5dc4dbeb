/** `secneuron issue`: issue a key manifest and its API token (the token is printed once). */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { ManifestError, UsageError } from "../errors.js";
import { isValidAttribute } from "../core/abe/policy.js";
import { issueManifest } from "../core/manifest/manifest.js";
import { MODEL_PATTERN, SUBJECT_PATTERN } from "../core/manifest/schema.js";
import { loadAuthority } from "../edges/authority.js";
import { MANIFEST_FILE_SUFFIX, writeManifestFile } from "../edges/manifests/manifest-file.js";
import type { Command } from "./args.js";

const DEFAULT_EXPIRES = "90d";
const UNIT_MS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

function usage(msg: string, cmd: string): UsageError {
  return new UsageError("CLI_USAGE", `${cmd}: ${msg}\nRun 'secneuron ${cmd} --help' for usage.`);
}

/**
 * Parses an absolute time: `YYYY-MM-DD` (UTC midnight) or `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z`
 * or a `±HH:MM` offset (a zone is required). Returns epoch milliseconds.
 */
export function parseInstantArg(text: string, flag: string, cmd: string): number {
  const m = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.exec(text);
  const t = m ? Date.parse(m[1] ? text : `${text}T00:00:00Z`) : NaN;
  if (!Number.isFinite(t)) {
    throw usage(`${flag}: expected an ISO 8601 time with a zone (2025-06-01, 2025-06-01T12:00:00Z, 2025-06-01T14:00+02:00), got ${JSON.stringify(text)}`, cmd);
  }
  return t;
}

/** `--expires`: a duration from now (`30d`, `12h`, `90m`, `2w`, `3600s`), an ISO time, or `never`. */
export function parseExpiresArg(text: string, now: number, cmd: string): number | undefined {
  if (text === "never") return undefined;
  const d = /^([1-9][0-9]{0,5})([smhdw])$/.exec(text);
  if (d) return now + Number(d[1]) * UNIT_MS[d[2]!]!;
  return parseInstantArg(text, "--expires", cmd);
}

/** Repeated and/or comma-separated list option values, trimmed, empty items dropped. */
export function listOption(v: unknown): string[] {
  const items = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return items.flatMap((s) => String(s).split(",")).map((s) => s.trim()).filter(Boolean);
}

const HELP = `Usage: secneuron issue --authority <dir> --subject <name> --attrs <a,b,...> --out <file|dir>
                       [--models <name|sha256:hex>,...] [--expires 30d|<ISO>|never]
                       [--not-before <ISO>] [--force] [--json]

Issues a key manifest signed by the authority: a CP-ABE user key holding the attributes,
wrapped under a key derived from a fresh random API token (scrypt N=2^15, AES-256-GCM), plus
the subject, model scope and validity window. The token is printed ONCE, on stdout (the rest
goes to stderr); the manifest stores only its SHA-256, so keep the token: it cannot be recovered.

Options:
  --authority <dir>     authority directory (secneuron authority init)
  --subject <name>      who holds the key: letters, digits and . _ @ + : - (max 128)
  --attrs <list>        attributes, comma-separated or repeated (task:code,tier:pro)
  --models <list>       model scope: names and/or sha256:<64 hex> digests of sealed model files,
                        comma-separated or repeated (default: every model)
  --expires <when>      duration from now (30d, 12h, 90m, 2w, 3600s), an ISO time, or 'never'
                        (default: ${DEFAULT_EXPIRES})
  --not-before <ISO>    start of validity (default: now); 2025-06-01 or 2025-06-01T12:00:00Z
  --out <file|dir>      manifest file to write (0600, atomically); for a directory, the file is
                        <dir>/<subject>.<id8>${MANIFEST_FILE_SUFFIX}. The sidecar loads only *${MANIFEST_FILE_SUFFIX}
  --force               overwrite an existing --out file
  --json                print one JSON object {token, manifest, subject, id, ...} instead
  -h, --help            this help

Example:
  secneuron issue --authority ./authority --subject alice --attrs task:code,task:math \\
      --models llama3.2:1b --expires 30d --out manifests/alice${MANIFEST_FILE_SUFFIX}`;

export const issueCommand: Command = {
  name: "issue",
  summary: "issue a signed key manifest and its API token (shown once)",
  help: HELP,
  options: {
    authority: { type: "string" },
    subject: { type: "string" },
    attrs: { type: "string", multiple: true },
    models: { type: "string", multiple: true },
    expires: { type: "string" },
    "not-before": { type: "string" },
    out: { type: "string" },
    force: { type: "boolean" },
  },
  async run(values, positionals, io) {
    const cmd = "issue";
    if (positionals.length) throw usage(`unexpected argument ${JSON.stringify(positionals[0])}`, cmd);
    for (const req of ["authority", "subject", "attrs", "out"]) {
      if (values[req] === undefined) throw usage(`--${req} is required`, cmd);
    }
    const subject = String(values.subject);
    if (!new RegExp(SUBJECT_PATTERN).test(subject)) {
      throw usage(`--subject: ${JSON.stringify(subject)} must be 1-128 characters from letters, digits and . _ @ + : - (starting with a letter or digit)`, cmd);
    }
    const attributes = listOption(values.attrs);
    if (!attributes.length) throw usage("--attrs: at least one attribute is required", cmd);
    for (const a of attributes) {
      if (!isValidAttribute(a)) throw usage(`--attrs: invalid attribute ${JSON.stringify(a)}: 1-128 characters from [A-Za-z0-9:_.-], not all digits, not and/or/of`, cmd);
    }
    const models = listOption(values.models);
    for (const m of models) {
      if (!new RegExp(MODEL_PATTERN).test(m)) throw usage(`--models: invalid model ${JSON.stringify(m)}: a name ([A-Za-z0-9._:/@+-], max 256) or sha256:<64 lowercase hex>`, cmd);
    }
    const now = Date.now();
    const notBefore = values["not-before"] !== undefined ? parseInstantArg(String(values["not-before"]), "--not-before", cmd) : now;
    const expires = parseExpiresArg(values.expires !== undefined ? String(values.expires) : DEFAULT_EXPIRES, now, cmd);
    if (expires !== undefined && Math.floor(expires / 1000) <= Math.floor(notBefore / 1000)) {
      throw usage("--expires must be later than --not-before", cmd);
    }

    const outArg = String(values.out);
    const outIsDir = existsSync(outArg) && statSync(outArg).isDirectory();
    if (!outIsDir && !values.force && existsSync(outArg)) {
      throw new ManifestError("MANIFEST_FILE_EXISTS", `${outArg} already exists; use --force to replace it`, { file: outArg });
    }
    const authority = loadAuthority(String(values.authority));
    let issued;
    try {
      issued = issueManifest(
        { publicParams: authority.publicParams, masterKey: authority.masterKey, issuerSecretKey: authority.issuerSecretKey, subject, attributes, models, notBefore, expires },
        { now },
      );
    } finally {
      authority.issuerSecretKey.fill(0);
    }
    const { manifest, text, token } = issued;
    const out = outIsDir ? join(outArg, `${subject}.${manifest.id.slice(0, 8)}${MANIFEST_FILE_SUFFIX}`) : outArg;
    writeManifestFile(out, text, { force: Boolean(values.force) });

    const summary = {
      manifest: out,
      id: manifest.id,
      subject,
      attributes: manifest.attributes,
      models: manifest.models ?? null,
      notBefore: manifest.notBefore,
      expires: manifest.expires ?? null,
      fingerprint: manifest.authority.fingerprint,
    };
    if (values.json) {
      io.out(JSON.stringify({ token, ...summary }));
    } else {
      for (const w of authority.warnings) io.err(`warning: ${w}`);
      io.err(
        [
          `wrote ${out}`,
          `  id          ${manifest.id}`,
          `  subject     ${subject}`,
          `  attributes  ${manifest.attributes.join(", ")}`,
          `  models      ${manifest.models ? manifest.models.join(", ") : "(every model)"}`,
          `  valid       ${manifest.notBefore} .. ${manifest.expires ?? "never expires"}`,
          `  authority   ${authority.shortFingerprint}`,
          ...(out.endsWith(MANIFEST_FILE_SUFFIX) ? [] : [`note: the sidecar's watcher loads only *${MANIFEST_FILE_SUFFIX} files`]),
          "API token (shown only now; the manifest holds only its hash):",
        ].join("\n"),
      );
      io.out(token);
    }
    return 0;
  },
};
