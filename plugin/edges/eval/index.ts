/** The evaluation edges: task files, weight norms, per-example losses and the full evaluate(). */
export * from "./tasks.js";
export * from "./weight-norm.js";
export * from "./loss-process.js";
export * from "./evaluate.js";
