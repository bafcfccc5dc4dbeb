/**
 * Argument parsing shared by all subcommands: node:util parseArgs with strict checking, turned
 * into UsageError on anything unknown or malformed.
 */
import { readFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.js";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Full help text (usage line, options, examples). */
  readonly help: string;
  readonly options: OptionSpec;
  run(values: Record<string, unknown>, positionals: string[], io: CliIo): Promise<number>;
}

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readonly isTTY: boolean;
}

export function parseCommandArgs(cmd: Command, argv: string[]): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { help: { type: "boolean", short: "h" }, json: { type: "boolean" }, ...cmd.options },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Record<string, unknown>, positionals };
  } catch (e) {
    throw new UsageError("CLI_USAGE", `${cmd.name}: ${(e as Error).message}\nRun 'secneuron ${cmd.name} --help' for usage.`);
  }
}

/** A required string option, or a UsageError naming it. */
export function requiredOption(values: Record<string, unknown>, key: string, cmd: string): string {
  const v = values[key];
  if (typeof v !== "string" || !v) throw new UsageError("CLI_USAGE", `${cmd}: --${key} is required\nRun 'secneuron ${cmd} --help' for usage.`);
  return v;
}

/** The API token from --token or --token-file ('-' = stdin), trimmed; undefined when neither. */
export function tokenOption(values: Record<string, unknown>, cmd: string): string | undefined {
  if (values.token !== undefined && values["token-file"] !== undefined) throw new UsageError("CLI_USAGE", `${cmd}: give --token or --token-file, not both`);
  if (values["token-file"] === undefined) return values.token === undefined ? undefined : String(values.token);
  const p = String(values["token-file"]);
  try {
    return readFileSync(p === "-" ? 0 : p, "utf8").trim();
  } catch (e) {
    throw new UsageError("CLI_USAGE", `${cmd}: --token-file: cannot read ${p}: ${(e as Error).message}`);
  }
}
