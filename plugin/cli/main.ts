/** The `secneuron` command line: dispatch to one subcommand, map typed errors to exit codes. */
import { SecNeuronError, UsageError } from "../errors.js";
import { parseCommandArgs, type CliIo, type Command } from "./args.js";
/**
 * Subcommands, loaded on demand: `inspect` must start in a fraction of a second and not pay for
 * the sidecar's express, the crypto or the engine modules it does not use.
 */
interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: "inspect", summary: "show a GGUF model's architecture, hyperparameters, tensors and policy tree", load: async () => (await import("./inspect.js")).inspectCommand },
  { name: "authority", summary: "create (init) or describe (show) the key-issuing authority", load: async () => (await import("./authority.js")).authorityCommand },
  { name: "issue", summary: "issue a signed key manifest and its API token (shown once)", load: async () => (await import("./issue.js")).issueCommand },
  { name: "verify-manifest", summary: "check a key manifest (schema, signature, authority, validity, token)", load: async () => (await import("./verify-manifest.js")).verifyManifestCommand },
  { name: "seal", summary: "encrypt the neurons of locked tasks into a sealed model", load: async () => (await import("./seal.js")).sealCommand },
  { name: "unseal", summary: "decrypt what a manifest unlocks into a tmpfs variant", load: async () => (await import("./unseal.js")).unsealCommand },
  { name: "scan", summary: "detect rows that still hold ciphertext (or are zeroed) in a GGUF model", load: async () => (await import("./scan.js")).scanCommand },
  { name: "profile", summary: "measure which FFN neurons each task uses (writes a profile for seal)", load: async () => (await import("./profile.js")).profileCommand },
  { name: "eval", summary: "evaluate sealing on real llama.cpp: locked-task accuracy, collateral damage, baselines", load: async () => (await import("./eval.js")).evalCommand },
  { name: "serve", summary: "run the sidecar: per-key model access in front of llama.cpp", load: async () => (await import("./serve.js")).serveCommand },
];

const VERSION = "0.1.0";

function topHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return `secneuron ${VERSION}: access control inside a local LLM's weights

Usage: secneuron <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join("\n")}

Run 'secneuron <command> --help' for a command's options. Every command takes --json.`;
}

export const processIo: CliIo = {
  out: (t) => process.stdout.write(t.endsWith("\n") ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith("\n") ? t : `${t}\n`),
  isTTY: Boolean(process.stderr.isTTY),
};

/** Run the CLI; returns the exit code (0 ok, 1 failure, 2 usage). Never throws. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  const json = rest.includes("--json");
  try {
    if (!name || name === "--help" || name === "-h" || name === "help") {
      io.out(topHelp());
      return name ? 0 : 2;
    }
    if (name === "--version" || name === "-v") {
      io.out(VERSION);
      return 0;
    }
    const entry = COMMANDS.find((c) => c.name === name);
    if (!entry) throw new UsageError("CLI_UNKNOWN_COMMAND", `unknown command '${name}'\n\n${topHelp()}`);
    const cmd = await entry.load();
    const { values, positionals } = parseCommandArgs(cmd, rest);
    if (values.help) {
      io.out(cmd.help);
      return 0;
    }
    return await cmd.run(values, positionals, io);
  } catch (e) {
    const usage = e instanceof UsageError;
    if (e instanceof SecNeuronError) {
      if (json) io.out(JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } }, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
      else io.err(`error: ${e.message}${usage ? "" : ` [${e.code}]`}`);
    } else {
      const msg = e instanceof Error ? e.message : String(e);
      if (json) io.out(JSON.stringify({ error: { code: "INTERNAL", message: msg } }));
      else io.err(`error: ${msg}`);
    }
    return usage ? 2 : 1;
  }
}
