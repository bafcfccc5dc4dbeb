/**
 * `npm run gen:random -- <out.gguf> [--type q8_0|f16|q4_0] [--size 2G | --layers N] [--embd N]
 * [--ff N] [--heads N] [--seed N] [--json]`: write a random-weight llama model.
 */
import { parseArgs } from "node:util";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { progressBar, formatBytes } from "../../plugin/cli/progress.js";
import { DEFAULT_DIMS, dimsForSize, writeRandomLlamaModel } from "./random-model.js";

const TYPES: Record<string, GgmlType> = { f16: GgmlType.F16, q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0 };

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size '${s}' (examples: 2G, 512M)`);
  const mult = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"];
  return Math.round(Number(m[1]) * mult);
}

async function run(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      type: { type: "string", default: "q8_0" }, size: { type: "string" }, layers: { type: "string" },
      embd: { type: "string" }, ff: { type: "string" }, heads: { type: "string" }, seed: { type: "string", default: "1" },
      json: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.log("Usage: npm run gen:random -- <out.gguf> [--type q8_0|f16|q4_0] [--size 2G | --layers N] [--embd 4096] [--ff 11008] [--heads 32] [--seed 1] [--json]");
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const type = TYPES[values.type!.toLowerCase()];
  if (type === undefined) throw new Error(`--type must be one of ${Object.keys(TYPES).join(", ")}`);
  let dims = { ...DEFAULT_DIMS };
  if (values.embd) dims.nEmbd = Number(values.embd);
  if (values.ff) dims.nFf = Number(values.ff);
  if (values.heads) { dims.nHead = Number(values.heads); dims.nHeadKv = dims.nHead; }
  if (values.size) dims = dimsForSize(parseSize(values.size), type, dims);
  if (values.layers) dims.nLayer = Number(values.layers);
  const started = performance.now();
  let bar: ReturnType<typeof progressBar> | undefined;
  const h = await writeRandomLlamaModel(positionals[0]!, {
    type, dims, seed: Number(values.seed),
    onProgress: (done, total) => { bar ??= progressBar("writing", total); bar.update(done); },
  });
  bar?.done();
  const secs = (performance.now() - started) / 1000;
  const result = { file: positionals[0], type: values.type, dims, bytes: h.fileSize, seconds: Number(secs.toFixed(2)) };
  if (values.json) console.log(JSON.stringify(result));
  else console.log(`wrote ${positionals[0]}: ${formatBytes(h.fileSize)}, ${dims.nLayer} layers, in ${secs.toFixed(1)} s`);
}

run().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exitCode = 1;
});
