/** `secneuron verify-manifest <file>`: every check the sidecar makes, with a precise error code. */
import { UsageError } from "../errors.js";
import { loadAuthorityPublic } from "../edges/authority.js";
import { readManifestFile } from "../edges/manifests/manifest-file.js";
import { tokenOption, type Command } from "./args.js";
import { parseInstantArg } from "./issue.js";

const HELP = `Usage: secneuron verify-manifest <file> [--token <T> | --token-file <path>]
                       [--authority <dir> | --issuer-key <hex>] [--fingerprint <hex>]
                       [--at <ISO>] [--json]

Checks a key manifest: JSON, schema, canonical form, ed25519 signature, issuing authority,
KDF cost and validity window; with a token, also the token hash, unwrapping the CP-ABE user
key and that its attributes equal the manifest's. Exit 0 and a summary when valid; exit 1 and
one error code otherwise:
  MANIFEST_READ_FAILED, MANIFEST_PARSE, MANIFEST_UNSUPPORTED_VERSION, MANIFEST_SCHEMA (with
  the JSON path), MANIFEST_NOT_CANONICAL, MANIFEST_BAD_SIGNATURE, MANIFEST_WRONG_AUTHORITY,
  MANIFEST_WEAK_KDF, MANIFEST_NOT_YET_VALID, MANIFEST_EXPIRED, MANIFEST_WRONG_TOKEN,
  MANIFEST_UNWRAP_FAILED, MANIFEST_KEY_MISMATCH.
Without --authority/--issuer-key/--fingerprint only the manifest's own signature is checked,
which anyone can produce: the summary says so.

Options:
  --token <T>          API token to check and unwrap with (visible in the process list;
                       prefer --token-file)
  --token-file <path>  read the token from a file ('-' for stdin); surrounding whitespace ignored
  --authority <dir>    expect this authority (reads its public files only)
  --issuer-key <hex>   expect this ed25519 issuer public key (64 hex digits)
  --fingerprint <hex>  expect this authority fingerprint (64 hex digits)
  --at <ISO>           check the validity window at this time instead of now
  --json               print one JSON object
  -h, --help           this help`;

function usage(msg: string): UsageError {
  return new UsageError("CLI_USAGE", `verify-manifest: ${msg}\nRun 'secneuron verify-manifest --help' for usage.`);
}

function hexArg(v: unknown, flag: string): string | undefined {
  if (v === undefined) return undefined;
  const s = String(v).toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(s)) throw usage(`${flag}: expected 64 hex digits`);
  return s;
}

export const verifyManifestCommand: Command = {
  name: "verify-manifest",
  summary: "check a key manifest (schema, signature, authority, validity, token)",
  help: HELP,
  options: {
    token: { type: "string" },
    "token-file": { type: "string" },
    authority: { type: "string" },
    "issuer-key": { type: "string" },
    fingerprint: { type: "string" },
    at: { type: "string" },
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw usage("expected exactly one manifest file");
    const file = positionals[0]!;
    if (values.authority !== undefined && values["issuer-key"] !== undefined) throw usage("give --authority or --issuer-key, not both");
    const token = tokenOption(values, "verify-manifest");
    let expectedIssuer = hexArg(values["issuer-key"], "--issuer-key");
    let expectedFingerprint = hexArg(values.fingerprint, "--fingerprint");
    let authorityName: string | undefined;
    const warnings: string[] = [];
    if (values.authority !== undefined) {
      const a = loadAuthorityPublic(String(values.authority));
      if (expectedFingerprint !== undefined && expectedFingerprint !== a.fingerprint) {
        throw usage(`--fingerprint differs from the fingerprint of ${a.dir} (${a.fingerprint})`);
      }
      expectedIssuer = a.issuerKey;
      expectedFingerprint = a.fingerprint;
      authorityName = a.dir;
      warnings.push(...a.warnings);
    }
    const now = values.at !== undefined ? parseInstantArg(String(values.at), "--at", "verify-manifest") : Date.now();

    const { manifest: m, userKey, authorityChecked } = await readManifestFile(file, { now, token, expectedIssuer, expectedFingerprint });
    if (!authorityChecked) warnings.push("issuer not checked: anyone can sign a manifest with their own key; pass --authority, --issuer-key or --fingerprint");

    if (values.json) {
      io.out(
        JSON.stringify({
          valid: true,
          file,
          id: m.id,
          subject: m.subject,
          attributes: m.attributes,
          models: m.models ?? null,
          issuedAt: m.issuedAt,
          notBefore: m.notBefore,
          expires: m.expires ?? null,
          checkedAt: new Date(now).toISOString(),
          authority: { fingerprint: m.authority.fingerprint, issuerKey: m.authority.issuerKey, checked: authorityChecked },
          token: { checked: token !== undefined, userKeyUnwrapped: userKey !== undefined },
          kdf: m.userKey.kdf.name + ` N=2^${m.userKey.kdf.logN} r=${m.userKey.kdf.r} p=${m.userKey.kdf.p}`,
          warnings,
        }),
      );
    } else {
      for (const w of warnings) io.err(`warning: ${w}`);
      io.out(
        [
          `OK           ${file}`,
          `id           ${m.id}`,
          `subject      ${m.subject}`,
          `attributes   ${m.attributes.join(", ")}`,
          `models       ${m.models ? m.models.join(", ") : "(every model)"}`,
          `valid        ${m.notBefore} .. ${m.expires ?? "never expires"} (checked at ${new Date(now).toISOString()})`,
          `issued       ${m.issuedAt}`,
          `authority    ${m.authority.fingerprint}${authorityChecked ? ` (matches ${authorityName ?? "the expected key"})` : " (NOT CHECKED)"}`,
          `issuer key   ${m.authority.issuerKey}`,
          `token        ${userKey ? "matches; user key unwrapped, attributes match" : "not checked (pass --token or --token-file)"}`,
        ].join("\n"),
      );
    }
    return 0;
  },
};
