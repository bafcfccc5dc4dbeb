/**
 * Iterative (conditional) ablation selection, an experiment on the multi-task model (issue 6):
 * single-unit ablation misses skills spread over redundant neurons, so pick in rounds and
 * re-measure after each round's removals.
 *
 *   start: the top `--start` fraction of FFN neurons per locked task by activation specificity;
 *   each round: the `--candidates` best remaining neurons per locked task (activation
 *   specificity) are ablated in llama.cpp with the current selection kept zeroed (ablateModel's
 *   `zeroed`/`candidates`); per locked task, the `--per-round` candidates with the highest
 *   ratio of its loss increase to the largest increase on an unlocked task (each normalised by
 *   its task's mean) join the selection.
 *
 * After each round it writes `<out>/round-<r>.json`: a profile whose importances encode the pick
 * order (10000 - rank for the locked task that picked the neuron, 0 elsewhere), so that
 * `secneuron eval --methods ablation --ablation-profile <out>/round-<r>.json --budgets b`
 * seals exactly the first round(b * n_layer * n_ff) picks of each locked task.
 * `--pii-secret` scores PII phone numbers on the digits after the fixed "555-" prefix only (what an
 * attacker who supplies the prefix extracts).
 *
 * CLI: node dist/examples/multitask/iterative-ablation.js [--model m.gguf] [--lock pii,abuse]
 *   [--start 0.05] [--per-round 40] [--rounds 4] [--candidates 250] [--examples 40]
 *   [--threads 2] [--pii-secret] [--resume round-N.json] --out dir
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PROFILE_FORMAT, PROFILE_VERSION, type Profile } from "../../plugin/core/profile/profile.js";
import { ablateModel } from "../../plugin/edges/profile/ablate.js";
import { profileModel } from "../../plugin/edges/profile/profile-process.js";
import { TASKS } from "./corpus.js";

type Pick = readonly [layer: number, index: number];

const { values: a } = parseArgs({
  options: {
    model: { type: "string", default: "examples/multitask/models/multitask-f16.gguf" },
    data: { type: "string", default: "examples/multitask/data" },
    lock: { type: "string", default: "pii,abuse" },
    start: { type: "string", default: "0.05" },
    "per-round": { type: "string", default: "40" },
    rounds: { type: "string", default: "4" },
    candidates: { type: "string", default: "250" },
    examples: { type: "string", default: "40" },
    threads: { type: "string", default: "2" },
    "pii-secret": { type: "boolean" },
    resume: { type: "string" },
    out: { type: "string" },
  },
});
if (!a.out) throw new Error("--out <dir> is required");
const lock = a.lock!.split(",");
const names: string[] = [...TASKS];
for (const t of lock) if (!names.includes(t)) throw new Error(`--lock: unknown task '${t}'`);
const read = (split: string, t: string) => readFileSync(join(a.data!, `${split}-${t}.jsonl`), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { prompt: string; answer: string });
const calib = Object.fromEntries(
  names.map((t) => [
    t,
    read("calib", t)
      .slice(0, Number(a.examples))
      .map((x) => (a["pii-secret"] && t === "pii" && x.answer.startsWith("555-") ? { prompt: `${x.prompt}555-`, answer: x.answer.slice(4) } : x)),
  ]),
);
mkdirSync(a.out, { recursive: true });

const act = await profileModel({ modelPath: a.model!, tasks: Object.fromEntries(names.map((t) => [t, read("calib", t).map((x) => x.prompt + x.answer)])), threads: 1, hashModel: false });
const nL = act.model.blockCount;
const nFf = act.model.feedForwardLength;
const imp = (p: Profile, t: string, l: number, i: number) => p.tasks[t]!.layers.find((x) => x.layer === l)?.importance[i] ?? 0;
const meanOf = (p: Profile) =>
  Object.fromEntries(names.map((t) => { let s = 0; for (const l of p.tasks[t]!.layers) for (const v of l.importance) s += v; return [t, s / (nL * nFf) || 1e-12]; }));
/** Task-mean-normalised importance on t over the largest on `others`. */
const ratio = (p: Profile, m: Record<string, number>, t: string, others: readonly string[], l: number, i: number) => {
  let o = 0;
  for (const u of others) o = Math.max(o, imp(p, u, l, i) / m[u]!);
  return imp(p, t, l, i) / m[t]! / (o + 0.01);
};
const actMean = meanOf(act);
const picks: Record<string, Pick[]> = Object.fromEntries(lock.map((t) => [t, []]));
const chosen = new Set<string>();
let first = 0;
const ranked = (t: string, p: Profile, m: Record<string, number>, others: readonly string[], pool?: ReadonlyArray<Pick>) => {
  const xs: Array<[number, number, number]> = [];
  const consider = (l: number, i: number) => { if (!chosen.has(`${l}.${i}`) && imp(p, t, l, i) > 0) xs.push([ratio(p, m, t, others, l, i), l, i]); };
  if (pool) for (const [l, i] of pool) consider(l, i);
  else for (let l = 0; l < nL; l++) for (let i = 0; i < nFf; i++) consider(l, i);
  return xs.sort((x, y) => y[0] - x[0] || x[1] - y[1] || x[2] - y[2]).map(([, l, i]) => [l, i] as Pick);
};
if (a.resume) {
  const p = JSON.parse(readFileSync(a.resume, "utf8")) as Profile;
  first = Number(p.source?.round) + 1;
  for (const t of lock) {
    const xs: Array<[number, number, number]> = [];
    p.tasks[t]!.layers.forEach((l) => l.importance.forEach((v, i) => v > 0 && xs.push([v, l.layer, i])));
    picks[t] = xs.sort((x, y) => y[0] - x[0]).map(([, l, i]) => [l, i] as Pick);
    for (const [l, i] of picks[t]!) chosen.add(`${l}.${i}`);
  }
} else {
  const n0 = Math.round(Number(a.start) * nL * nFf);
  for (const t of lock) for (const x of ranked(t, act, actMean, names.filter((u) => u !== t)).slice(0, n0)) picks[t]!.push(x);
  for (const t of lock) for (const [l, i] of picks[t]!) chosen.add(`${l}.${i}`);
}
console.log(`start: ${chosen.size} neurons (${lock.map((t) => `${t} ${picks[t]!.length}`).join(", ")})`);
for (let round = first; round < first + Number(a.rounds); round++) {
  const pool = new Map<string, Pick>();
  for (const t of lock) for (const x of ranked(t, act, actMean, names.filter((u) => u !== t)).slice(0, Number(a.candidates))) pool.set(`${x[0]}.${x[1]}`, x);
  const t0 = Date.now();
  const { profile } = await ablateModel({
    modelPath: a.model!, tasks: calib, units: "ffn", threads: Number(a.threads), hashModel: false,
    zeroed: [...chosen].map((k) => { const [layer, index] = k.split(".").map(Number) as [number, number]; return { kind: "ffn" as const, layer, index }; }),
    candidates: [...pool.values()].map(([layer, index]) => ({ kind: "ffn" as const, layer, index })),
  });
  const m = meanOf(profile);
  const unlocked = names.filter((u) => !lock.includes(u));
  for (const t of lock) for (const x of ranked(t, profile, m, unlocked, [...pool.values()]).slice(0, Number(a["per-round"]))) { picks[t]!.push(x); chosen.add(`${x[0]}.${x[1]}`); }
  const out: Profile = {
    format: PROFILE_FORMAT, version: PROFILE_VERSION, model: { architecture: "llama", blockCount: nL, feedForwardLength: nFf },
    source: { tool: "examples/multitask/iterative-ablation.ts (pick order)", round: String(round), lock: lock.join(","), piiSecret: String(Boolean(a["pii-secret"])) },
    tasks: Object.fromEntries(names.map((t) => {
      const layers = Array.from({ length: nL }, (_, layer) => ({ layer, importance: new Array<number>(nFf).fill(0) }));
      (picks[t] ?? []).forEach(([l, i], k) => { layers[l]!.importance[i] = 10000 - k; });
      return [t, { tokens: calib[t]!.length, layers }];
    })),
  };
  writeFileSync(join(a.out, `round-${round}.json`), JSON.stringify(out));
  console.log(`round ${round}: ${chosen.size} neurons (${lock.map((t) => `${t} ${picks[t]!.length}`).join(", ")}), ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
