/** Evaluation core (pure): metrics, keyword-filter baseline, results, report and chart. */
export * from "./metrics.js";
export * from "./filter.js";
export * from "./results.js";
export * from "./report.js";
export * from "./chart.js";
export * from "./selection.js";
