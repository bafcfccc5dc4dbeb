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

/** A bad flag value: the message (naming the flag) on stderr, exit 2. */
export function usageError(message: string): never {
  console.error(message);
  process.exit(2);
}

/** An integer flag >= min (0 or 1), or undefined when absent; anything else is a usage error. */
export function intFlag(values: FlagValues, name: string, min: 0 | 1): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (typeof raw !== "string" || !Number.isSafeInteger(n) || n < min) {
    usageError(`--${name}: expected a ${min === 0 ? "non-negative" : "positive"} integer, found ${JSON.stringify(raw)}`);
  }
  return n;
}
