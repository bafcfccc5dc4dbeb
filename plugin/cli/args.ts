/**
 * Argument parsing shared by all subcommands: node:util parseArgs with strict checking, turned
 * into UsageError on anything unknown or malformed.
 */
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
