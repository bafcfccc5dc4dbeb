/**
 * `npm run multitask:quantize`: the K-quant of the multi-task model, made by llama.cpp's own
 * quantizer (llama_model_quantize through koffi). Rows of 128 elements cannot hold K-quant blocks
 * (256), so llama.cpp falls back per tensor (Q5_0/Q8_0) and only ffn_down and the output get K
 * types: the file is what llama.cpp's Q4_K_M gives for this model.
 *
 * The input is validated with our own GGUF reader first (llama.cpp aborts the process on some
 * malformed files), and the output is written next to its destination and renamed into place, so
 * a failed run never leaves a truncated model where the committed one was.
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { quantizeModel } from "../../ffi/libllama.js";
import { validateLlamaModel } from "../../plugin/core/gguf/llama-check.js";
import { readGgufHeader } from "../../plugin/edges/gguf-file.js";
import { SecNeuronError } from "../../plugin/errors.js";
import { strictArgs, usageError } from "./cli-args.js";

const USAGE = `Usage: node dist/examples/multitask/quantize.js [--in model-f16.gguf] [--out model-q4_k_m.gguf]
Quantizes --in (default examples/multitask/models/multitask-f16.gguf) to Q4_K_M with llama.cpp's
quantizer (1 thread) and writes --out (default examples/multitask/models/multitask-q4_k_m.gguf).`;

function quantizeMultitask(input: string, output: string): void {
  if (resolve(input) === resolve(output)) usageError(`--out ${output}: must differ from --in`);
  if (!existsSync(input)) usageError(`--in ${input}: no such file (export the model first: npm run multitask:export)`);
  validateLlamaModel(readGgufHeader(input));
  const tmp = `${output}.tmp-${process.pid}`;
  try {
    quantizeModel(input, tmp, "MOSTLY_Q4_K_M", { threads: 1 });
    validateLlamaModel(readGgufHeader(tmp));
    renameSync(tmp, output);
  } finally {
    rmSync(tmp, { force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const v = strictArgs({ in: { type: "string", default: "examples/multitask/models/multitask-f16.gguf" }, out: { type: "string", default: "examples/multitask/models/multitask-q4_k_m.gguf" } }, USAGE);
  try {
    quantizeMultitask(v.in as string, v.out as string);
  } catch (e) {
    if (!(e instanceof SecNeuronError)) throw e;
    console.error(`quantize: ${e.message}`);
    process.exit(1);
  }
  console.log(`wrote ${v.out as string}`);
}
