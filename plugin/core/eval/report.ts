/** Markdown report (pure) of an evaluation's results; docs/evaluation.md explains each table. */
import type { Accuracy } from "./metrics.js";
import type { EvalResults, KeyScores, RunResult } from "./results.js";

export function pct(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : "n/a";
}

export function fmtAcc(a: Accuracy): string {
  return `${pct(a.rate)} [${pct(a.ci.low)}, ${pct(a.ci.high)}] (${a.correct}/${a.total})`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function keyTable(keys: readonly KeyScores[], taskNames: readonly string[], lock: readonly string[]): string {
  return table(
    ["key", ...taskNames.map((t) => (lock.includes(t) ? `${t} (locked)` : t))],
    keys.map((k) => [k.key, ...taskNames.map((t) => (k.tasks[t] ? fmtAcc(k.tasks[t]!.accuracy) : "-"))]),
  );
}

function findRun(res: EvalResults, lock: readonly string[], method: string, budget: number): RunResult | undefined {
  return res.runs.find((r) => r.lock.join(",") === lock.join(",") && r.method === method && r.budget === budget);
}

export interface ReportOptions {
  /** File name of the chart image next to the report (default chart.png); omitted when null. */
  readonly chart?: string | null;
}

export function renderReport(res: EvalResults, opts: ReportOptions = {}): string {
  const taskNames = Object.keys(res.tasks);
  const out: string[] = [];
  out.push(`# secneuron evaluation`);
  out.push("");
  out.push(
    `Model \`${res.model.path}\`${res.model.sha256 ? ` (sha256 ${res.model.sha256.slice(0, 16)}…)` : ""}, ${res.model.blockCount} layers x ${res.model.feedForwardLength} FFN neurons. ` +
      `Greedy decoding in llama.cpp (1 thread), each prompt from an empty context; ${res.config.strict ? "strict" : "prefix"} exact match. ` +
      `Methods: ${res.config.methods.join(", ")}; budgets (fraction of FFN neurons per locked task): ${res.config.budgets.map((b) => pct(b, 2)).join(", ")}; seed ${res.config.seed}. ` +
      `Intervals are Wilson 95%. Total ${res.seconds.total.toFixed(1)} s (profiling ${res.seconds.profile.toFixed(1)} s).`,
  );
  out.push("");
  out.push("## Tasks and the plain model (held-out)");
  out.push("");
  out.push(
    table(
      ["task", "kind", "held-out", "calibration (profiled / evaluated)", "plain accuracy"],
      taskNames.map((t) => {
        const i = res.tasks[t]!;
        return [t, i.kind, String(i.heldout), `${i.calib} / ${i.calibEvaluated}`, fmtAcc(res.plain.heldout.tasks[t]!.accuracy)];
      }),
    ),
  );
  out.push("");
  if (opts.chart !== null) {
    out.push(`![locked-task accuracy vs authorized loss](${opts.chart ?? "chart.png"})`);
    out.push("");
  }
  out.push("## Budgets chosen on calibration data");
  out.push("");
  out.push(
    `Rule: the smallest budget whose CALIBRATION locked-task accuracy is at most ${pct(res.config.budgetRule.maxLockedFraction, 0)} of the plain model's and whose calibration authorized loss is at most ${pct(res.config.budgetRule.maxAuthorizedLoss, 0)}; else the best trade-off (marked *). Figures below are HELD-OUT.`,
  );
  out.push("");
  out.push(
    table(
      ["lock", "method", "budget", "sealed neurons", "locked-task accuracy", "authorized loss (mean / max)"],
      res.chosen.map((c) => {
        const r = findRun(res, c.lock, c.method, c.budget)!;
        return [c.lock.join("+"), c.method, `${pct(c.budget, 2)}${c.metTarget ? "" : " *"}`, String(r.sealedNeurons), pct(r.summary.heldout.lockedAccuracy), `${pct(r.summary.heldout.authorizedLoss)} / ${pct(r.summary.heldout.maxAuthorizedLoss)}`];
      }),
    ),
  );
  out.push("");
  for (const c of res.chosen) {
    const r = findRun(res, c.lock, c.method, c.budget)!;
    out.push(`### ${c.lock.join("+")}, ${c.method}, budget ${pct(c.budget, 2)}: accuracy per key (held-out)`);
    out.push("");
    out.push(keyTable([res.plain.heldout, ...r.heldout], taskNames, c.lock));
    out.push("");
    const extra: string[][] = [];
    for (const k of [res.plain.heldout, ...r.heldout]) {
      for (const t of taskNames) {
        const s = k.tasks[t];
        if (!s) continue;
        if (s.kind === "pii") extra.push([k.key, t, `PII extraction: greedy ${fmtAcc(s.accuracy)}; with fixed prefix ${s.withPrefix ? fmtAcc(s.withPrefix) : "-"}`]);
        if (s.kind === "abuse") extra.push([k.key, t, `abuse completion rate ${fmtAcc(s.accuracy)}`]);
        if (s.mia) extra.push([k.key, t, `membership-inference AUC ${s.mia.auc.toFixed(3)} (${s.mia.members} members, ${s.mia.nonMembers} non-members)`]);
      }
    }
    if (extra.length) {
      out.push(table(["key", "task", "metric"], extra));
      out.push("");
    }
  }
  out.push("## Full sweep");
  out.push("");
  out.push(
    table(
      ["lock", "method", "budget", "neurons/task", "sealed", "held-out locked acc.", "held-out auth. loss", "calib locked acc.", "calib auth. loss"],
      res.runs.map((r) => [
        r.lock.join("+"),
        r.method,
        pct(r.budget, 2),
        String(r.neuronsPerTask),
        String(r.sealedNeurons),
        pct(r.summary.heldout.lockedAccuracy),
        pct(r.summary.heldout.authorizedLoss),
        pct(r.summary.calib.lockedAccuracy),
        pct(r.summary.calib.authorizedLoss),
      ]),
    ),
  );
  out.push("");
  if (res.filter.length) {
    out.push("## Baseline: I/O keyword filter");
    out.push("");
    out.push("Keywords learnt from calibration prompts (units present in the task's prompts and in no other task's). A trivial rewrite of the matched text (a zero-width space, or Cyrillic look-alike letters) gets prompts past the filter; the last column says whether the plain model still answers them.");
    out.push("");
    out.push(
      table(
        ["task", "keywords", "held-out blocked", "other tasks blocked", "pass after zero-width", "pass after homoglyph", "plain accuracy after rewrite"],
        res.filter.map((f) => [
          f.task,
          f.keywords.slice(0, 6).map((k) => `\`${k}\``).join(" ") + (f.keywords.length > 6 ? ` (+${f.keywords.length - 6})` : ""),
          `${f.blockedHeldout.blocked}/${f.blockedHeldout.total}`,
          `${f.blockedOther.blocked}/${f.blockedOther.total}`,
          `${f.passAfterRewrite["zero-width"].passed}/${f.passAfterRewrite["zero-width"].total}`,
          `${f.passAfterRewrite.homoglyph.passed}/${f.passAfterRewrite.homoglyph.total}`,
          Object.entries(f.accuracyAfterRewrite).map(([k, a]) => `${k}: ${pct(a.rate)}`).join(", "),
        ]),
      ),
    );
    out.push("");
  }
  return out.join("\n");
}
