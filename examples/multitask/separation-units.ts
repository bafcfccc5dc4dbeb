/**
 * The units separate.py trains each locked task into: for every lockable task, the FFN neurons
 * `secneuron eval`'s ablation method selects at the given budget from an ablation profile
 * (selectNeurons, "ratio" scoring, the task alone against every other task), written as a JSON
 * map task -> components in probe-memory.js's grammar (`ffn:<layer>:<i>-<i>` joined by "+").
 * Going through selectNeurons itself means the units trained and the units a seal at that budget
 * encrypts are the same set by construction.
 *
 * CLI: node dist/examples/multitask/separation-units.js [--profile examples/multitask/profiles/ablation-f16.json]
 *        [--budget 0.05] [--tasks arith,code,trans,pii,abuse] [--out file.json]   (stdout without --out)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseProfileText } from "../../plugin/core/profile/profile.js";
import { selectNeurons } from "../../plugin/core/profile/select.js";
import { strictArgs, usageError } from "./cli-args.js";

const a = strictArgs(
  {
    profile: { type: "string", default: "examples/multitask/profiles/ablation-f16.json" },
    budget: { type: "string", default: "0.05" },
    tasks: { type: "string", default: "arith,code,trans,pii,abuse" },
    out: { type: "string" },
  },
  "Usage: node dist/examples/multitask/separation-units.js [--profile ablation.json] [--budget 0.05] [--tasks arith,code,...] [--out units.json]",
);
const budget = Number(a.budget);
if (!(budget > 0 && budget <= 1)) usageError(`--budget: expected a fraction in (0, 1], found ${JSON.stringify(a.budget)}`);
let profile;
try {
  profile = parseProfileText(readFileSync(String(a.profile), "utf8"));
} catch (e) {
  usageError(`--profile ${String(a.profile)}: ${(e as Error).message}`);
}
const tasks = String(a.tasks).split(",").filter(Boolean);
const out: Record<string, string> = {};
for (const t of tasks) {
  let picked;
  try {
    picked = selectNeurons(profile, { tasks: [t], ratio: budget, scoring: "ratio" }).perTask.get(t)!;
  } catch (e) {
    usageError(`--tasks ${t}: ${(e as Error).message}`);
  }
  out[t] = picked.map((r) => `ffn:${r.layer}:${r.index}-${r.index}`).join("+");
}
const json = JSON.stringify(out, null, 1) + "\n";
if (a.out) writeFileSync(String(a.out), json);
else process.stdout.write(json);
