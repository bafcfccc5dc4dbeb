/** `secneuron authority init|show <dir>`: create or describe a CP-ABE + ed25519 issuing authority. */
import { UsageError } from "../errors.js";
import { initAuthority, loadAuthorityPublic } from "../edges/authority.js";
import type { Command } from "./args.js";

const HELP = `Usage: secneuron authority init <dir> [--force] [--json]
       secneuron authority show <dir> [--json]

init  creates <dir> (mode 0700) and writes, each file 0600 and atomically:
        abe-public-params.bin  CP-ABE (FAME) public parameters; their SHA-256 is the
                               authority fingerprint that sealed models and manifests name
        abe-master-key.bin     CP-ABE master key (SECRET: issues user keys)
        issuer-ed25519.key     ed25519 secret key that signs manifests (SECRET)
        authority.json         fingerprint, issuer public key, creation time
      and prints the fingerprint and issuer key. Refuses to overwrite an existing
      authority unless --force (every manifest and sealed model of the old one stops working).
show  prints the fingerprint and issuer key of an existing authority (reads public files only).

Options:
  --force     init: replace an existing authority
  --json      print one JSON object
  -h, --help  this help

Example:
  secneuron authority init ./authority`;

export const authorityCommand: Command = {
  name: "authority",
  summary: "create (init) or describe (show) the key-issuing authority",
  help: HELP,
  options: { force: { type: "boolean" } },
  async run(values, positionals, io) {
    const [sub, dir, ...rest] = positionals;
    if ((sub !== "init" && sub !== "show") || !dir || rest.length) {
      throw new UsageError("CLI_USAGE", "authority: expected 'init <dir>' or 'show <dir>'\nRun 'secneuron authority --help' for usage.");
    }
    if (sub === "show" && values.force) throw new UsageError("CLI_USAGE", "authority show: --force applies to init only");
    const a = sub === "init" ? initAuthority(dir, { force: Boolean(values.force), now: Date.now() }) : loadAuthorityPublic(dir);
    if (values.json) {
      io.out(JSON.stringify({ dir: a.dir, fingerprint: a.fingerprint, shortFingerprint: a.shortFingerprint, issuerKey: a.issuerKey, createdAt: a.createdAt, warnings: a.warnings }));
    } else {
      for (const w of a.warnings) io.err(`warning: ${w}`);
      if (sub === "init") io.err(`authority created in ${dir} (keep abe-master-key.bin and issuer-ed25519.key secret)`);
      io.out(`fingerprint  ${a.fingerprint}  (${a.shortFingerprint})\nissuer key   ${a.issuerKey}\ncreated      ${a.createdAt}`);
    }
    return 0;
  },
};
