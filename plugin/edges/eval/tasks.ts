/**
 * Task sets from a directory: `heldout-<task>.jsonl` and `calib-<task>.jsonl` (one JSON object per
 * line with string `prompt` and `answer`; other fields ignored), optionally `<task>-members.jsonl`
 * and `<task>-nonmembers.jsonl` for membership inference (lines with prompt/answer, or records
 * with an `examples` array of them). Kind by task name: `pii` -> "pii", `abuse` -> "abuse", else
 * "exact" (override with `kinds`).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SecNeuronError } from "../../errors.js";
import type { EvalExample } from "../../core/eval/metrics.js";
import type { TaskKind } from "../../core/eval/results.js";
import { mulberry32, shuffleInPlace } from "../../core/seeded-random.js";

export class EvalError extends SecNeuronError {}

export interface TaskSet {
  readonly heldout: readonly EvalExample[];
  readonly calib: readonly EvalExample[];
  readonly kind?: TaskKind;
  readonly members?: readonly EvalExample[];
  readonly nonMembers?: readonly EvalExample[];
}

function parseLine(path: string, n: number, line: string): EvalExample[] {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new EvalError("EVAL_BAD_TASK_FILE", `${path}:${n}: not JSON: ${(e as Error).message}`, { path, line: n });
  }
  const one = (x: unknown, where: string): EvalExample => {
    const o = x as { prompt?: unknown; answer?: unknown } | null;
    if (!o || typeof o !== "object" || typeof o.prompt !== "string" || typeof o.answer !== "string" || o.answer.length === 0) {
      throw new EvalError("EVAL_BAD_TASK_FILE", `${path}:${n}${where}: need string "prompt" and non-empty string "answer"`, { path, line: n });
    }
    return { prompt: o.prompt, answer: o.answer };
  };
  const rec = v as { examples?: unknown };
  if (rec && typeof rec === "object" && Array.isArray(rec.examples)) return rec.examples.map((x, i) => one(x, `.examples[${i}]`));
  return [one(v, "")];
}

export function readExamplesFile(path: string, limit?: number): EvalExample[] {
  const xs = readFileSync(path, "utf8")
    .split("\n")
    .map((l, i) => [l, i + 1] as const)
    .filter(([l]) => l.trim())
    .flatMap(([l, i]) => parseLine(path, i, l));
  return limit !== undefined ? xs.slice(0, limit) : xs;
}

/** Fisher-Yates with mulberry32(seed): the same seed gives the same order. */
export function seededShuffle<T>(xs: readonly T[], seed: number): T[] {
  return shuffleInPlace([...xs], mulberry32(seed));
}

export function defaultKind(task: string): TaskKind {
  return task === "pii" ? "pii" : task === "abuse" ? "abuse" : "exact";
}

export interface LoadTasksOptions {
  /** Only these tasks (default: every task with both a heldout and a calib file). */
  readonly tasks?: readonly string[];
  /** Cap on held-out examples per task (first N lines). */
  readonly heldoutLimit?: number;
  /** Cap on calibration examples per task. */
  readonly calibLimit?: number;
  /**
   * Draw the held-out examples (and member/non-member records) in a seeded random order before
   * the cap, instead of file order: a reviewer's fresh sample of prompts never trained on.
   */
  readonly heldoutSeed?: number;
  readonly kinds?: Readonly<Record<string, TaskKind>>;
}

export function loadTaskDir(dir: string, opts: LoadTasksOptions = {}): Record<string, TaskSet> {
  if (!existsSync(dir)) throw new EvalError("EVAL_NO_TASK_DIR", `task directory ${dir} does not exist`, { dir });
  const names = readdirSync(dir)
    .map((f) => /^heldout-(.+)\.jsonl$/.exec(f)?.[1])
    .filter((t): t is string => t !== undefined && existsSync(join(dir, `calib-${t}.jsonl`)))
    .sort();
  const want = opts.tasks ?? names;
  const out: Record<string, TaskSet> = {};
  for (const t of want) {
    if (!names.includes(t)) throw new EvalError("EVAL_UNKNOWN_TASK", `task '${t}' has no heldout-${t}.jsonl and calib-${t}.jsonl in ${dir} (found: ${names.join(", ") || "none"})`, { task: t });
    const drawn = (f: string): EvalExample[] => {
      const all = readExamplesFile(join(dir, f));
      const xs = opts.heldoutSeed === undefined ? all : seededShuffle(all, opts.heldoutSeed);
      return opts.heldoutLimit !== undefined ? xs.slice(0, opts.heldoutLimit) : xs;
    };
    const opt = (f: string): EvalExample[] | undefined => (existsSync(join(dir, f)) ? drawn(f) : undefined);
    const members = opt(`${t}-members.jsonl`);
    const nonMembers = opt(`${t}-nonmembers.jsonl`);
    out[t] = {
      heldout: drawn(`heldout-${t}.jsonl`),
      calib: readExamplesFile(join(dir, `calib-${t}.jsonl`), opts.calibLimit),
      kind: opts.kinds?.[t] ?? defaultKind(t),
      ...(members && nonMembers ? { members, nonMembers } : {}),
    };
  }
  if (Object.keys(out).length === 0) throw new EvalError("EVAL_NO_TASKS", `no tasks in ${dir} (need heldout-<task>.jsonl and calib-<task>.jsonl)`, { dir });
  return out;
}
