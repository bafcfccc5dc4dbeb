/** `secneuron seal`: encrypt the neurons that carry the locked tasks into a sealed GGUF. */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { UsageError } from "../errors.js";
import { parseProfileText } from "../core/profile/profile.js";
import type { Scoring } from "../core/profile/select.js";
import { loadAuthority } from "../edges/authority.js";
import { sealModel } from "../edges/seal.js";
import { requiredOption, type Command } from "./args.js";
import { listOption } from "./issue.js";
import { formatBytes, progressBar, type ProgressBar } from "./progress.js";

const HELP = `Usage: secneuron seal --model <in.gguf> --profile <profile.json> --lock <task,...>
                      --authority <dir> --out <out.sn.gguf>
                      [--ratio 0.05 | --count N] [--head-ratio f | --head-count N]
                      [--scoring ratio|penalty|importance] [--penalty 1]
                      [--policy '<task>=<expression>' ...] [--no-admin] [--force] [--json]

Selects, per locked task, the FFN neurons (and, with --head-ratio/--head-count, the attention
head groups) the profile marks as specific to it, groups them into the layered policy tree
(single-task nodes, nodes shared by several locked tasks), encrypts their ffn_gate and ffn_up
rows (attn_q, attn_k and attn_v rows for head groups) with one AES-256-GCM key per node, wraps each node key with CP-ABE
under the node's task policies and signs the header with the authority's issuer key. The input
is never modified; the output is written to a temporary file and renamed into place.

Options:
  --model <file>        plaintext GGUF model (llama architecture)
  --profile <file>      neuron profile (docs/profile-format.md)
  --lock <list>         tasks to lock, comma-separated or repeated
  --authority <dir>     authority directory (secneuron authority init)
  --out <file>          sealed model to write (conventionally *.sn.gguf)
  --ratio <f>           fraction of the profiled FFN neurons each task seals (default 0.05)
  --count <n>           exact number of neurons per task (overrides --ratio)
  --head-ratio <f>      fraction of the profiled attention head groups each task seals (default 0:
                        none; needs a profile with head importances)
  --head-count <n>      exact number of head groups per task (overrides --head-ratio)
  --scoring <s>         ratio (default: specificity), penalty, importance
  --penalty <l>         lambda for --scoring penalty (default 1)
  --policy <t=expr>     policy for a task (default task:<t>), e.g. 'code=task:code and tier:pro';
                        'or admin' is added unless --no-admin
  --no-admin            do not add 'or admin' to every policy
  --force               overwrite --out if it exists
  --json                print a JSON summary`;

function num(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError("CLI_USAGE", `seal: ${flag} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

export const sealCommand: Command = {
  name: "seal",
  summary: "encrypt the neurons of locked tasks into a sealed model",
  help: HELP,
  options: {
    model: { type: "string" }, profile: { type: "string" }, lock: { type: "string", multiple: true }, authority: { type: "string" },
    out: { type: "string" }, ratio: { type: "string" }, count: { type: "string" },
    "head-ratio": { type: "string" }, "head-count": { type: "string" }, scoring: { type: "string" }, penalty: { type: "string" },
    policy: { type: "string", multiple: true }, "no-admin": { type: "boolean" }, force: { type: "boolean" },
  },
  async run(values, positionals, io) {
    const need = (k: string): string => requiredOption(values, k, "seal");
    if (positionals.length) throw new UsageError("CLI_USAGE", `seal: unexpected argument '${positionals[0]}'`);
    const model = need("model");
    const out = need("out");
    const lock = listOption(values.lock);
    if (!lock.length) throw new UsageError("CLI_USAGE", "seal: --lock needs at least one task");
    if (resolve(model) === resolve(out)) throw new UsageError("CLI_USAGE", "seal: --out must differ from --model (the input is never modified)");
    if (existsSync(out) && !values.force) throw new UsageError("CLI_USAGE", `seal: ${out} exists (use --force to overwrite)`);
    const scoring = values.scoring as Scoring | undefined;
    if (scoring && !["ratio", "penalty", "importance"].includes(scoring)) throw new UsageError("CLI_USAGE", `seal: --scoring must be ratio, penalty or importance`);
    const policies: Record<string, string> = {};
    for (const p of (values.policy as string[] | undefined) ?? []) {
      const i = p.indexOf("=");
      if (i <= 0) throw new UsageError("CLI_USAGE", `seal: --policy expects <task>=<expression>, got '${p}'`);
      policies[p.slice(0, i).trim()] = p.slice(i + 1).trim();
    }
    let profileText: string;
    try {
      profileText = readFileSync(need("profile"), "utf8");
    } catch (e) {
      throw new UsageError("CLI_USAGE", `seal: cannot read --profile: ${(e as Error).message}`);
    }
    const profile = parseProfileText(profileText);
    const authority = loadAuthority(need("authority"));
    for (const w of authority.warnings) io.err(`warning: ${w}`);
    const bars = new Map<string, ProgressBar>();
    const summary = await sealModel({
      model, out, profile, authority,
      lock: { tasks: lock, ratio: num(values.ratio, "--ratio"), count: num(values.count, "--count"),
        headRatio: num(values["head-ratio"], "--head-ratio"), headCount: num(values["head-count"], "--head-count"), scoring, penalty: num(values.penalty, "--penalty") },
      tree: { policies, admin: !values["no-admin"] },
      onProgress: io.isTTY && !values.json ? (phase, done, total) => {
        let b = bars.get(phase);
        if (!b) { for (const o of bars.values()) o.done(); bars.clear(); b = progressBar(phase.padEnd(6), total); bars.set(phase, b); }
        b.update(done);
      } : undefined,
    });
    for (const b of bars.values()) b.done();
    if (values.json) {
      io.out(JSON.stringify(summary));
    } else {
      io.out(`sealed ${model} -> ${summary.out} in ${summary.seconds.toFixed(2)} s (backend ${summary.backend})`);
      io.out(`plaintext sha256 ${summary.plaintextSha256}; authority ${summary.authority.slice(0, 16)}…`);
      const heads = (n: number): string => (summary.sealedHeads > 0 ? ` ${String(n).padStart(5)} head groups` : "");
      io.out(`${summary.sealedNeurons} neurons${summary.sealedHeads > 0 ? `, ${summary.sealedHeads} head groups` : ""}, ${formatBytes(summary.sealedBytes)} sealed in ${summary.nodes.length} node(s):`);
      for (const n of summary.nodes) io.out(`  ${n.id.padEnd(20)} ${String(n.neurons).padStart(7)} neurons${heads(n.heads)}  ${formatBytes(n.bytes).padStart(10)}  policies: ${n.policies.join(" | ")}`);
    }
    return 0;
  },
};
