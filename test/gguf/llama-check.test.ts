import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GgmlType, GgufValueType } from "../../plugin/core/gguf/constants.js";
import { validateLlamaModel } from "../../plugin/core/gguf/llama-check.js";
import { kv, type GgufHeader, type GgufTensorInfo, type GgufValue } from "../../plugin/core/gguf/types.js";
import { readGgufHeader } from "../../plugin/edges/gguf-file.js";
import { GgufFormatError } from "../../plugin/errors.js";
import { writeRandomLlamaModel } from "../../examples/random-model/random-model.js";
import { scratchDir } from "../helpers/tmp.js";

const scratch = scratchDir();
let base: GgufHeader;

beforeAll(async () => {
  const path = join(scratch.dir, "tiny.gguf");
  await writeRandomLlamaModel(path, { type: GgmlType.Q8_0, dims: { nEmbd: 64, nFf: 128, nHead: 4, nHeadKv: 2, nLayer: 2, contextLength: 256 } });
  base = readGgufHeader(path);
});
afterAll(() => scratch.cleanup());

function withMeta(f: (m: Map<string, GgufValue>) => void): GgufHeader {
  const m = new Map(base.metadata);
  f(m);
  return { ...base, metadata: m };
}
function withTensors(f: (t: GgufTensorInfo[]) => void): GgufHeader {
  const t = [...base.tensors];
  f(t);
  return { ...base, tensors: t };
}
const tensor = (name: string) => base.tensors.find((t) => t.name === name)!;

describe("llama.cpp model validation", () => {
  it("accepts a well-formed model and reports its hyperparameters", () => {
    const p = validateLlamaModel(base);
    expect(p).toMatchObject({ embeddingLength: 64, feedForwardLength: 128, headCount: 4, headCountKv: 2, headDim: 16, blockCount: 2, vocabSize: 260 });
  });

  const cases: Array<[string, string, () => GgufHeader]> = [
    ["missing architecture", "LLAMA_MISSING_KEY", () => withMeta((m) => m.delete("general.architecture"))],
    ["unsupported architecture", "LLAMA_UNSUPPORTED_ARCH", () => withMeta((m) => m.set("general.architecture", kv.str("mamba")))],
    ["missing feed_forward_length (llama.cpp aborts)", "LLAMA_MISSING_KEY", () => withMeta((m) => m.delete("llama.feed_forward_length"))],
    ["missing head_count (llama.cpp aborts)", "LLAMA_MISSING_KEY", () => withMeta((m) => m.delete("llama.attention.head_count"))],
    ["head_count stored as u64", "LLAMA_KEY_TYPE", () => withMeta((m) => m.set("llama.attention.head_count", kv.u64(4n)))],
    ["head_count 0", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("llama.attention.head_count", kv.u32(0)))],
    ["head_count_kv not dividing head_count", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("llama.attention.head_count_kv", kv.u32(3)))],
    ["embedding not divisible by heads", "LLAMA_BAD_VALUE", () => withMeta((m) => { m.set("llama.attention.head_count", kv.u32(6)); m.set("llama.attention.head_count_kv", kv.u32(6)); })],
    ["epsilon NaN", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("llama.attention.layer_norm_rms_epsilon", kv.f32(NaN)))],
    ["context length 0", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("llama.context_length", kv.u32(0)))],
    ["mixture of experts", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("llama.expert_count", kv.u32(8)))],
    ["experts used without experts (llama.cpp aborts)", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("llama.expert_used_count", kv.u32(2)))],
    ["scores stored as strings (llama.cpp aborts)", "LLAMA_KEY_TYPE", () => withMeta((m) => m.set("tokenizer.ggml.scores", kv.strs(Array(260).fill("0"))))],
    ["token types stored as u8 (llama.cpp reads out of bounds)", "LLAMA_KEY_TYPE", () => withMeta((m) => m.set("tokenizer.ggml.token_type", { type: GgufValueType.ARRAY, itemType: GgufValueType.UINT8, value: Array(260).fill(1) }))],
    ["token type count mismatch", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("tokenizer.ggml.token_type", kv.i32s(Array(259).fill(1))))],
    ["token type 0", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("tokenizer.ggml.token_type", kv.i32s([0, ...Array(259).fill(6)])))],
    ["missing byte token", "LLAMA_BAD_VOCAB", () => withMeta((m) => { const t = [...(m.get("tokenizer.ggml.tokens")!.value as string[])]; t[3 + 10] = "x"; m.set("tokenizer.ggml.tokens", kv.strs(t)); })],
    ["unknown tokenizer", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("tokenizer.ggml.model", kv.str("rwkv")))],
    ["gpt2 without merges", "LLAMA_MISSING_KEY", () => withMeta((m) => m.set("tokenizer.ggml.model", kv.str("gpt2")))],
    ["bos id past the vocabulary", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("tokenizer.ggml.bos_token_id", kv.u32(260)))],
    ["vocab_size disagrees with tokens", "LLAMA_BAD_VALUE", () => withMeta((m) => m.set("llama.vocab_size", kv.u32(300)))],
    ["missing ffn_gate", "LLAMA_MISSING_TENSOR", () => withTensors((t) => t.splice(t.indexOf(tensor("blk.1.ffn_gate.weight")), 1))],
    ["unexpected tensor", "LLAMA_UNEXPECTED_TENSOR", () => withTensors((t) => t.push({ ...tensor("blk.0.ffn_up.weight"), name: "blk.2.ffn_up.weight" }))],
    ["wrong ffn_up shape", "LLAMA_BAD_SHAPE", () => withTensors((t) => { const i = t.indexOf(tensor("blk.0.ffn_up.weight")); t[i] = { ...t[i]!, ne: [64, 96] }; })],
    ["wrong token_embd vocab", "LLAMA_BAD_SHAPE", () => withTensors((t) => { t[0] = { ...t[0]!, ne: [64, 259] }; })],
    ["norm in F16", "LLAMA_BAD_TENSOR_TYPE", () => withTensors((t) => { const i = t.indexOf(tensor("output_norm.weight")); t[i] = { ...t[i]!, type: GgmlType.F16 }; })],
    ["weight as I16", "LLAMA_BAD_TENSOR_TYPE", () => withTensors((t) => { const i = t.indexOf(tensor("blk.0.attn_q.weight")); t[i] = { ...t[i]!, type: GgmlType.I16 }; })],
    ["weight as Q8_K", "LLAMA_BAD_TENSOR_TYPE", () => withTensors((t) => { const i = t.indexOf(tensor("blk.0.attn_q.weight")); t[i] = { ...t[i]!, type: GgmlType.Q8_K }; })],
  ];
  for (const [name, code, make] of cases) {
    it(`rejects ${name}`, () => {
      const h = make();
      try {
        validateLlamaModel(h);
        expect.unreachable(`${name} was accepted`);
      } catch (e) {
        expect(e).toBeInstanceOf(GgufFormatError);
        expect((e as GgufFormatError).code).toBe(code);
      }
    });
  }
});
