/** The `secneuron` command line: dispatch to one subcommand, map typed errors to exit codes. */
import { SecNeuronError, UsageError } from "../errors.js";
import { parseCommandArgs, type CliIo, type Command } from "./args.js";
import { inspectCommand } from "./inspect.js";
import { authorityCommand } from "./authority.js";
import { issueCommand } from "./issue.js";
import { verifyManifestCommand } from "./verify-manifest.js";
import { sealCommand } from "./seal.js";
import { unsealCommand } from "./unseal.js";
import { scanCommand } from "./scan.js";
import { serveCommand } from "./serve.js";

export const COMMANDS: readonly Command[] = [inspectCommand, authorityCommand, issueCommand, verifyManifestCommand, sealCommand, unsealCommand, scanCommand, serveCommand];

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
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) throw new UsageError("CLI_UNKNOWN_COMMAND", `unknown command '${name}'\n\n${topHelp()}`);
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
