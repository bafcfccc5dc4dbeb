/**
 * `npm run multitask:quantize`: the K-quant of the multi-task model, made by llama.cpp's own
 * quantizer (llama_model_quantize through koffi). Rows of 128 elements cannot hold K-quant blocks
 * (256), so llama.cpp falls back per tensor (Q5_0/Q8_0) and only ffn_down and the output get K
 * types: the file is what llama.cpp's Q4_K_M gives for this model.
 */
import { quantizeModel } from "../../ffi/libllama.js";

const input = process.argv[2] ?? "examples/multitask/models/multitask-f16.gguf";
const output = process.argv[3] ?? "examples/multitask/models/multitask-q4_k_m.gguf";
quantizeModel(input, output, "MOSTLY_Q4_K_M", { threads: 1 });
console.log(`wrote ${output}`);
