/**
 * Strict flags for the multitask scripts: an unknown flag or a missing value prints the usage and
 * exits 2 (before, corpus.js and eval-plain.js ignored unknown flags and ran with defaults, and
 * export.js once re-exported over the committed models that way); --help prints it and exits 0.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Flag values by name: strings for string options, true for boolean ones given. */
export type FlagValues = Readonly<Record<string, string | boolean | undefined>>;

export function strictArgs(options: Options, usage: string, argv: readonly string[] = process.argv.slice(2)): FlagValues {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...options, help: { type: "boolean" } }, strict: true, allowPositionals: false });
  } catch (e) {
    console.error(`${(e as Error).message}\n${usage}`);
    process.exit(2);
  }
  if (parsed.values.help) {
    console.log(usage);
    process.exit(0);
  }
  return parsed.values as FlagValues;
}
