/**
 * Export the trained multi-task model (train.py's weights.bin + weights.json) to GGUF in F32,
 * F16 and Q8_0 with our writer, then check with real llama.cpp (completeInChild, greedy, one
 * thread) that its answers match PyTorch's greedy answers recorded by train.py. An exact F32
 * match validates the RoPE layout, tensor orientation and tokenization conventions.
 *
 * CLI: node dist/examples/multitask/export.js [--weights dir] [--out dir] [--name multitask] [--no-check]
 * Writes <out>/<name>-f32.gguf, <name>-f16.gguf, <name>-q8_0.gguf.
 */
import { readFileSync, statSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BYTE_VOCAB, llamaMetadata, llamaTensorShapes, type LlamaDims } from "../../plugin/core/gguf/byte-vocab.js";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { encodeTensorData } from "../../plugin/core/gguf/quant.js";
import { kv } from "../../plugin/core/gguf/types.js";
import { writeGgufFile, type TensorWithData } from "../../plugin/edges/gguf-file.js";
import { completeInChild } from "../../plugin/edges/engine/engine-process.js";
import { TASKS } from "./corpus.js";
import { strictArgs, usageError } from "./cli-args.js";

interface WeightsIndex {
  dims: { nEmbd: number; nLayer: number; nHead: number; nHeadKv: number; nFf: number; contextLength: number; rmsEpsilon: number; ropeBase: number; nVocab: number };
  tensors: Array<{ name: string; shape: number[]; offset: number; count: number }>;
  step: number;
  minutes: number;
  heldout: Record<string, number>;
  samples: Record<string, Array<{ prompt: string; answer: string; torch: string }>>;
}

export const MODEL_TYPES = [
  { label: "f32", type: GgmlType.F32, fileType: 0 },
  { label: "f16", type: GgmlType.F16, fileType: 1 },
  { label: "q8_0", type: GgmlType.Q8_0, fileType: 7 },
] as const;

export function loadWeights(dir: string): { index: WeightsIndex; dims: LlamaDims; tensors: Map<string, Float32Array> } {
  const index = JSON.parse(readFileSync(join(dir, "weights.json"), "utf8")) as WeightsIndex;
  const bin = readFileSync(join(dir, "weights.bin"));
  const d = index.dims;
  const dims: LlamaDims = {
    contextLength: d.contextLength,
    nEmbd: d.nEmbd,
    nLayer: d.nLayer,
    nFf: d.nFf,
    nHead: d.nHead,
    nHeadKv: d.nHeadKv,
    rmsEpsilon: d.rmsEpsilon,
  };
  if (d.nVocab !== BYTE_VOCAB.size) throw new Error(`vocab ${d.nVocab} != ${BYTE_VOCAB.size}`);
  const tensors = new Map<string, Float32Array>();
  for (const t of index.tensors) {
    const copy = new Float32Array(t.count);
    const view = new DataView(bin.buffer, bin.byteOffset + t.offset, t.count * 4);
    for (let i = 0; i < t.count; i++) copy[i] = view.getFloat32(i * 4, true);
    tensors.set(t.name, copy);
  }
  // The exporter trusts nothing: names, order and shapes must be exactly llama.cpp's.
  const want = llamaTensorShapes(dims, BYTE_VOCAB.size);
  if (want.length !== index.tensors.length) throw new Error(`${index.tensors.length} tensors, llama wants ${want.length}`);
  want.forEach((w, i) => {
    const got = index.tensors[i]!;
    const ne = [...got.shape].reverse(); // PyTorch [out, in] -> GGUF ne [in, out]
    if (got.name !== w.name || ne.join(",") !== w.ne.join(",")) throw new Error(`tensor ${i}: ${got.name} ne [${ne}] != ${w.name} [${w.ne}]`);
  });
  return { index, dims, tensors };
}

export async function exportModels(weightsDir: string, outDir: string, name = "multitask"): Promise<Record<string, { path: string; bytes: number }>> {
  const { index, dims, tensors } = loadWeights(weightsDir);
  mkdirSync(outDir, { recursive: true });
  const out: Record<string, { path: string; bytes: number }> = {};
  for (const m of MODEL_TYPES) {
    const metadata = llamaMetadata(dims, `secneuron-multitask-${m.label}`, m.fileType);
    metadata.set("general.description", kv.str(`secneuron multi-task test model (6 synthetic tasks, fictional data), step ${index.step}`));
    const specs: TensorWithData[] = llamaTensorShapes(dims, BYTE_VOCAB.size).map((s) => {
      const type = s.matrix ? m.type : GgmlType.F32;
      return { name: s.name, ne: s.ne, type, data: encodeTensorData(type, tensors.get(s.name)!, s.ne[0]!) };
    });
    const path = join(outDir, `${name}-${m.label}.gguf`);
    await writeGgufFile(path, metadata, specs);
    out[m.label] = { path, bytes: statSync(path).size };
  }
  return out;
}

/** llama.cpp's greedy answers vs PyTorch's on train.py's recorded samples. */
export async function checkAgainstTorch(weightsDir: string, modelPath: string): Promise<{ agree: number; total: number; matchAnswer: number; diffs: string[] }> {
  const { index } = loadWeights(weightsDir);
  const samples: Array<{ prompt: string; answer: string; torch: string }> = [];
  const got: string[] = [];
  for (const t of TASKS) {
    const xs = index.samples[t] ?? [];
    if (xs.length === 0) continue;
    // train.py decoded each task's samples with max(answer length) + 2 new tokens: same here.
    const maxTokens = Math.max(...xs.map((s) => Buffer.byteLength(s.answer))) + 2;
    samples.push(...xs);
    got.push(...(await completeInChild({ modelPath, prompts: xs.map((s) => s.prompt), maxTokens, threads: 1, timeoutMs: 300_000 })));
  }
  let agree = 0;
  let matchAnswer = 0;
  const diffs: string[] = [];
  samples.forEach((s, i) => {
    if (got[i] === s.torch) agree++;
    else diffs.push(`${JSON.stringify(s.prompt)}: llama.cpp ${JSON.stringify(got[i])} torch ${JSON.stringify(s.torch)}`);
    if (got[i] === s.answer) matchAnswer++;
  });
  return { agree, total: samples.length, matchAnswer, diffs };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // Strict: an unknown flag (or --help) must not fall through to overwriting the committed models.
  const args = strictArgs(
    { weights: { type: "string", default: "examples/multitask/weights" }, out: { type: "string", default: "examples/multitask/models" }, "no-check": { type: "boolean" }, name: { type: "string", default: "multitask" } },
    "Usage: node dist/examples/multitask/export.js [--weights dir] [--out dir] [--name multitask] [--no-check]\nWrites <out>/<name>-{f32,f16,q8_0}.gguf.",
  );
  const weightsDir = String(args.weights);
  const name = String(args.name);
  if (!/^[A-Za-z0-9._-]+$/.test(name)) usageError(`--name: expected a file name stem (letters, digits, . _ -), found ${JSON.stringify(name)}`);
  const written = await exportModels(weightsDir, String(args.out), name);
  for (const [label, w] of Object.entries(written)) console.log(`${label}: ${w.path} ${(w.bytes / 1e6).toFixed(2)} MB`);
  if (!args["no-check"]) {
    let ok = true;
    for (const [label, w] of Object.entries(written)) {
      const r = await checkAgainstTorch(weightsDir, w.path);
      console.log(`${label}: llama.cpp == PyTorch greedy on ${r.agree}/${r.total} samples; == expected answer ${r.matchAnswer}/${r.total}`);
      for (const d of r.diffs.slice(0, 5)) console.log(`  ${d}`);
      // F32 must reproduce PyTorch (it is the same math); quantized files may differ on near ties.
      if (label === "f32" && r.agree < r.total) ok = false;
    }
    if (!ok) {
      console.error("F32 GGUF disagrees with PyTorch: conventions (RoPE, layout, tokens) are off");
      process.exitCode = 1;
    }
  }
}
