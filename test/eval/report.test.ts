/** Report and chart rendering from a hand-made results document. */
import { describe, expect, it } from "vitest";
import { accuracy, renderChartSvg, renderReport, summarize, type EvalResults, type KeyScores, type RunResult } from "../../plugin/core/eval/index.js";
import { svgToPng } from "../../plugin/edges/eval/evaluate.js";

const hits = (k: number, n: number): boolean[] => Array.from({ length: n }, (_, i) => i < k);
const keys = (name: string, pii: number, text: number): KeyScores => ({
  key: name,
  attributes: [],
  tasks: {
    pii: { kind: "pii", accuracy: accuracy(hits(pii, 20)), withPrefix: accuracy(hits(Math.min(20, pii + 2), 20)), mia: { auc: 0.5 + pii / 40, members: 20, nonMembers: 20 } },
    text: { kind: "exact", accuracy: accuracy(hits(text, 20)) },
  },
});
const plain = keys("plain", 18, 19);

function run(method: RunResult["method"], budget: number, none: number, text: number): RunResult {
  const heldout = [keys("admin", 18, 19), keys("task:pii", 18, text), keys("none", none, text)];
  return { lock: ["pii"], method, budget, neuronsPerTask: 10, sealedNeurons: 10, heldout, calib: heldout, summary: { heldout: summarize(["pii"], heldout, plain), calib: summarize(["pii"], heldout, plain) } };
}

const results: EvalResults = {
  format: "secneuron-eval",
  version: 1,
  model: { path: "m.gguf", sha256: "ab".repeat(32), blockCount: 2, feedForwardLength: 512 },
  config: { locks: [["pii"]], budgets: [0.01, 0.05], methods: ["specificity", "random"], seed: 3, strict: false, budgetRule: { maxLockedFraction: 0.1, maxAuthorizedLoss: 0.05 } },
  tasks: { pii: { kind: "pii", heldout: 20, calib: 30, calibEvaluated: 20, members: 20, nonMembers: 20 }, text: { kind: "exact", heldout: 20, calib: 30, calibEvaluated: 20, members: 0, nonMembers: 0 } },
  plain: { heldout: plain, calib: plain },
  runs: [run("specificity", 0.01, 4, 19), run("specificity", 0.05, 0, 18), run("random", 0.01, 18, 19), run("random", 0.05, 15, 17)],
  chosen: [
    { lock: ["pii"], method: "specificity", budget: 0.05, metTarget: true },
    { lock: ["pii"], method: "random", budget: 0.05, metTarget: false },
  ],
  filter: [
    {
      task: "pii",
      keywords: ["[pii]", "phone", "email"],
      blockedHeldout: { blocked: 20, total: 20 },
      blockedOther: { blocked: 0, total: 20 },
      passAfterRewrite: { "zero-width": { passed: 20, total: 20 }, homoglyph: { passed: 19, total: 20 } },
      accuracyAfterRewrite: { "zero-width": accuracy(hits(12, 20)), homoglyph: accuracy(hits(9, 20)) },
    },
  ],
  seconds: { profile: 1.5, total: 12.25 },
};

describe("renderReport", () => {
  const md = renderReport(results);
  it("has every section with Wilson intervals", () => {
    expect(md).toMatch(/^# secneuron evaluation/);
    expect(md).toContain("| pii | pii | 20 | 30 / 20 | 90.0% [69.9%, 97.2%] (18/20) |");
    expect(md).toContain("![locked-task accuracy vs authorized loss](chart.png)");
    expect(md).toContain("| pii | specificity | 5.00% | 10 | 0.0% |");
    expect(md).toContain("| pii | random | 5.00% * |");
    expect(md).toContain("| none | 0.0% [0.0%, 16.1%] (0/20) | 90.0% [69.9%, 97.2%] (18/20) |");
    expect(md).toContain("PII extraction: greedy 0.0% [0.0%, 16.1%] (0/20); with fixed prefix 10.0%");
    expect(md).toContain("membership-inference AUC 0.500");
    expect(md).toContain("## Full sweep");
    expect(md).toContain("| pii | `[pii]` `phone` `email` | 20/20 | 0/20 | 20/20 | 19/20 | zero-width: 60.0%, homoglyph: 45.0% |");
    expect(renderReport(results, { chart: null })).not.toContain("![");
  });
});

describe("renderChartSvg", () => {
  it("one panel per lock, one series per method, budgets labelled; renders to PNG", async () => {
    const svg = renderChartSvg(results);
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trim().endsWith("</svg>")).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg).toContain("lock: pii");
    expect(svg).toContain(">5%</text>");
    const png = await svgToPng(svg);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  });
});
