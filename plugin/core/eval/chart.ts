/**
 * SVG chart (pure): locked-task accuracy (y) against authorized loss (x) as the budget grows, one
 * panel per lock set, one series per selection method (points joined in budget order and
 * labelled with the budget). Held-out figures. Rendered to PNG by the edges (resvg).
 */
import type { EvalResults, Method } from "./results.js";

const COLORS: Readonly<Record<Method, string>> = {
  ablation: "#9467bd",
  specificity: "#d62728",
  random: "#7f7f7f",
  "largest-activation": "#1f77b4",
  "weight-norm": "#2ca02c",
};

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function fmtPct(x: number): string {
  return `${Number((x * 100).toFixed(1))}%`;
}

function niceMax(x: number): number {
  const steps = [0.04, 0.08, 0.2, 0.4, 0.6, 0.8, 1];
  for (const s of steps) if (x <= s) return s;
  return Math.ceil(x);
}

export function renderChartSvg(res: EvalResults): string {
  const locks = res.config.locks;
  const W = 540;
  const H = 360;
  const m = { l: 62, r: 18, t: 40, b: 52 };
  const legendH = 28;
  const width = W * Math.max(1, locks.length);
  const height = H + legendH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  locks.forEach((lock, pi) => {
    const runs = res.runs.filter((r) => r.lock.join(",") === lock.join(","));
    const losses = runs.map((r) => r.summary.heldout.authorizedLoss);
    const xMin = Math.min(0, ...losses);
    const xMax = niceMax(Math.max(0.04, ...losses));
    const x0 = pi * W + m.l;
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const sx = (v: number): number => x0 + ((v - xMin) / (xMax - xMin)) * pw;
    const sy = (v: number): number => m.t + (1 - v) * ph;
    parts.push(`<text x="${pi * W + W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">lock: ${esc(lock.join(" + "))}</text>`);
    parts.push(`<rect x="${x0}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
    for (let i = 0; i <= 4; i++) {
      const yv = i / 4;
      const xv = xMin + ((xMax - xMin) * i) / 4;
      parts.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${sy(yv)}" y2="${sy(yv)}" stroke="#ddd"/>`);
      parts.push(`<text x="${x0 - 6}" y="${sy(yv) + 4}" text-anchor="end" font-size="11">${fmtPct(yv)}</text>`);
      parts.push(`<text x="${sx(xv)}" y="${m.t + ph + 16}" text-anchor="middle" font-size="11">${fmtPct(xv)}</text>`);
    }
    parts.push(`<text x="${x0 + pw / 2}" y="${H - 14}" text-anchor="middle" font-size="12">authorized loss (accuracy drop, authorized key/task pairs)</text>`);
    parts.push(`<text transform="translate(${pi * W + 16} ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">locked-task accuracy (unauthorized)</text>`);
    // Later series are drawn smaller, so coinciding points stay visible as concentric rings.
    res.config.methods.forEach((method, mi) => {
      const radius = 7 - 1.5 * mi;
      const pts = runs.filter((r) => r.method === method).sort((a, b) => a.budget - b.budget);
      if (pts.length === 0) return;
      const c = COLORS[method];
      const path = pts.map((r) => `${sx(r.summary.heldout.authorizedLoss).toFixed(1)},${sy(r.summary.heldout.lockedAccuracy).toFixed(1)}`).join(" ");
      parts.push(`<polyline points="${path}" fill="none" stroke="${c}" stroke-width="2"/>`);
      for (const r of pts) {
        const x = sx(r.summary.heldout.authorizedLoss);
        const y = sy(r.summary.heldout.lockedAccuracy);
        parts.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${Math.max(2.5, radius)}" fill="${c}" stroke="#fff" stroke-width="1"><title>${esc(`${method} budget ${fmtPct(r.budget)}`)}</title></circle>`);
        parts.push(`<text x="${(x + 9 + 30 * mi).toFixed(1)}" y="${(y - 4).toFixed(1)}" font-size="10" fill="${c}">${fmtPct(r.budget)}</text>`);
      }
    });
  });
  let lx = 20;
  for (const method of res.config.methods) {
    parts.push(`<rect x="${lx}" y="${H + 8}" width="14" height="14" fill="${COLORS[method]}"/>`);
    parts.push(`<text x="${lx + 20}" y="${H + 20}" font-size="12">${esc(method)}</text>`);
    lx += 34 + method.length * 7.5;
  }
  parts.push(`</svg>`);
  return parts.join("\n");
}
