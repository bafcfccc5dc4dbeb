/**
 * Model-level validation for llama.cpp: the keys it reads must be present with the exact types
 * it asserts on, hyperparameters must be consistent with each other and with every tensor's
 * shape, and every tensor must be one llama.cpp expects, in a type its CPU backend computes.
 * llama.cpp aborts the whole process (GGML_ASSERT) or reads out of bounds on several of these
 * (a missing head count, scores stored as strings, token types stored as u8), so a file must
 * pass here before it is ever handed to the engine. Supported: architecture `llama`, dense FFN.
 */
import { GgufFormatError } from "../../errors.js";
import { GgmlType, GgufValueType, ggmlTypeName } from "./constants.js";
import type { GgufHeader, GgufTensorInfo, GgufValue } from "./types.js";

export interface LlamaHyperparams {
  readonly architecture: string;
  readonly contextLength: number;
  readonly embeddingLength: number;
  readonly blockCount: number;
  readonly feedForwardLength: number;
  readonly headCount: number;
  readonly headCountKv: number;
  readonly headDim: number;
  readonly rmsEpsilon: number;
  readonly vocabSize: number;
  readonly tokenizerModel: string;
  readonly tiedOutput: boolean;
}

export const SUPPORTED_ARCHITECTURES = ["llama"] as const;

/** Limits far above any real model, low enough that nothing runs away. */
const CAPS = { blocks: 1024, embd: 1 << 17, ff: 1 << 20, heads: 4096, ctx: 1 << 24, vocab: 1 << 22 };

/** 2-D weight types the CPU backend multiplies (ggml-cpu type_traits_cpu with vec_dot). */
const MATMUL_TYPES = new Set<number>([
  GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1,
  GgmlType.Q8_0, GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
  GgmlType.IQ2_XXS, GgmlType.IQ2_XS, GgmlType.IQ3_XXS, GgmlType.IQ1_S, GgmlType.IQ4_NL, GgmlType.IQ3_S,
  GgmlType.IQ2_S, GgmlType.IQ4_XS, GgmlType.IQ1_M, GgmlType.TQ1_0, GgmlType.TQ2_0, GgmlType.MXFP4,
]);

type Expected = GgufValueType | { array: GgufValueType };

/** Keys llama.cpp reads for a llama model, with the one wire type it accepts for each. */
function knownKeys(arch: string): Map<string, Expected> {
  const U = GgufValueType.UINT32;
  const F = GgufValueType.FLOAT32;
  const S = GgufValueType.STRING;
  const B = GgufValueType.BOOL;
  const m = new Map<string, Expected>([
    ["general.architecture", S], ["general.name", S], ["general.file_type", U], ["general.quantization_version", U],
    ["tokenizer.ggml.model", S], ["tokenizer.ggml.pre", S], ["tokenizer.chat_template", S],
    ["tokenizer.ggml.tokens", { array: S }], ["tokenizer.ggml.token_type", { array: GgufValueType.INT32 }],
    ["tokenizer.ggml.scores", { array: F }], ["tokenizer.ggml.merges", { array: S }],
    ["tokenizer.ggml.add_bos_token", B], ["tokenizer.ggml.add_eos_token", B], ["tokenizer.ggml.add_sep_token", B],
    ["tokenizer.ggml.add_space_prefix", B], ["tokenizer.ggml.remove_extra_whitespaces", B],
  ]);
  for (const id of ["bos", "eos", "eot", "eom", "unknown", "seperator", "padding", "mask", "cls", "prefix", "suffix", "middle"]) {
    m.set(`tokenizer.ggml.${id}_token_id`, U);
  }
  for (const k of ["context_length", "embedding_length", "block_count", "feed_forward_length", "vocab_size", "expert_count", "expert_used_count",
    "attention.head_count", "attention.head_count_kv", "attention.key_length", "attention.value_length", "rope.dimension_count"]) {
    m.set(`${arch}.${k}`, U);
  }
  for (const k of ["attention.layer_norm_rms_epsilon", "rope.freq_base", "rope.scaling.factor"]) m.set(`${arch}.${k}`, F);
  m.set(`${arch}.rope.scaling.type`, S);
  return m;
}

function fail(code: string, field: string, message: string, offset?: number): never {
  throw new GgufFormatError(code, field, offset, message);
}

function typeLabel(v: GgufValue): string {
  return v.type === GgufValueType.ARRAY ? `array of type ${v.itemType}` : `type ${v.type}`;
}

/** Validate that llama.cpp can load this file. Returns the model's hyperparameters. */
export function validateLlamaModel(h: GgufHeader): LlamaHyperparams {
  const md = h.metadata;
  const archV = md.get("general.architecture");
  if (!archV) fail("LLAMA_MISSING_KEY", "general.architecture", "required key is missing");
  if (archV.type !== GgufValueType.STRING) fail("LLAMA_KEY_TYPE", "general.architecture", `must be a string, found ${typeLabel(archV)}`);
  const arch = archV.value;
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    fail("LLAMA_UNSUPPORTED_ARCH", "general.architecture", `architecture '${arch}' is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(", ")})`);
  }

  for (const [key, want] of knownKeys(arch)) {
    const v = md.get(key);
    if (!v) continue;
    const ok = typeof want === "object" ? v.type === GgufValueType.ARRAY && v.itemType === want.array : v.type === want;
    if (!ok) {
      const w = typeof want === "object" ? `array of type ${want.array}` : `type ${want}`;
      fail("LLAMA_KEY_TYPE", key, `llama.cpp reads this key as ${w}, found ${typeLabel(v)}`);
    }
  }

  const u32 = (key: string, required: boolean, min: number, max: number): number | undefined => {
    const v = md.get(key);
    if (!v) {
      if (required) fail("LLAMA_MISSING_KEY", key, "required key is missing");
      return undefined;
    }
    const n = v.value as number;
    if (n < min || n > max) fail("LLAMA_BAD_VALUE", key, `${n} is outside ${min}..${max}`);
    return n;
  };
  const contextLength = u32(`${arch}.context_length`, true, 1, CAPS.ctx)!;
  const embeddingLength = u32(`${arch}.embedding_length`, true, 1, CAPS.embd)!;
  const blockCount = u32(`${arch}.block_count`, true, 1, CAPS.blocks)!;
  const feedForwardLength = u32(`${arch}.feed_forward_length`, true, 1, CAPS.ff)!;
  const headCount = u32(`${arch}.attention.head_count`, true, 1, CAPS.heads)!;
  const headCountKv = u32(`${arch}.attention.head_count_kv`, false, 1, CAPS.heads) ?? headCount;
  if (headCount % headCountKv !== 0) {
    fail("LLAMA_BAD_VALUE", `${arch}.attention.head_count_kv`, `${headCountKv} does not divide head_count ${headCount}`);
  }
  // Mixture-of-experts models are not supported yet: only 0 passes. A dense model that names a
  // number of experts used per token makes llama.cpp abort (llama-model.cpp GGML_ASSERT).
  u32(`${arch}.expert_count`, false, 0, 0);
  u32(`${arch}.expert_used_count`, false, 0, 0);
  let headDim = embeddingLength / headCount;
  const keyLength = u32(`${arch}.attention.key_length`, false, 1, CAPS.embd);
  const valueLength = u32(`${arch}.attention.value_length`, false, 1, CAPS.embd);
  if (keyLength !== undefined) headDim = keyLength;
  if (!Number.isInteger(headDim)) {
    fail("LLAMA_BAD_VALUE", `${arch}.attention.head_count`, `embedding_length ${embeddingLength} is not divisible by head_count ${headCount}`);
  }
  if (valueLength !== undefined && valueLength !== headDim) {
    fail("LLAMA_BAD_VALUE", `${arch}.attention.value_length`, `${valueLength} differs from key_length ${headDim}: not supported`);
  }
  if (headDim % 2 !== 0) fail("LLAMA_BAD_VALUE", `${arch}.attention.head_count`, `head dimension ${headDim} must be even (RoPE rotates pairs)`);
  const ropeDims = u32(`${arch}.rope.dimension_count`, false, 2, headDim);
  if (ropeDims !== undefined && ropeDims % 2 !== 0) fail("LLAMA_BAD_VALUE", `${arch}.rope.dimension_count`, `${ropeDims} must be even`);
  const epsV = md.get(`${arch}.attention.layer_norm_rms_epsilon`);
  if (!epsV) fail("LLAMA_MISSING_KEY", `${arch}.attention.layer_norm_rms_epsilon`, "required key is missing");
  const rmsEpsilon = epsV.value as number;
  if (!Number.isFinite(rmsEpsilon) || rmsEpsilon <= 0 || rmsEpsilon > 1) {
    fail("LLAMA_BAD_VALUE", `${arch}.attention.layer_norm_rms_epsilon`, `${rmsEpsilon} must be in (0, 1]`);
  }
  for (const k of [`${arch}.rope.freq_base`, `${arch}.rope.scaling.factor`]) {
    const v = md.get(k);
    if (v && !(Number.isFinite(v.value as number) && (v.value as number) > 0)) fail("LLAMA_BAD_VALUE", k, `${String(v.value)} must be a positive number`);
  }
  const scalingType = md.get(`${arch}.rope.scaling.type`);
  if (scalingType && !["none", "linear", "yarn"].includes(scalingType.value as string)) {
    fail("LLAMA_BAD_VALUE", `${arch}.rope.scaling.type`, `'${String(scalingType.value)}' is not one of none, linear, yarn`);
  }

  // Tokenizer.
  const tm = md.get("tokenizer.ggml.model");
  if (!tm) fail("LLAMA_MISSING_KEY", "tokenizer.ggml.model", "required key is missing");
  const tokenizerModel = tm.value as string;
  if (tokenizerModel !== "llama" && tokenizerModel !== "gpt2") {
    fail("LLAMA_BAD_VALUE", "tokenizer.ggml.model", `tokenizer '${tokenizerModel}' is not supported (supported: llama, gpt2)`);
  }
  const tokensV = md.get("tokenizer.ggml.tokens");
  if (!tokensV) fail("LLAMA_MISSING_KEY", "tokenizer.ggml.tokens", "required key is missing");
  const tokens = tokensV.value as readonly string[];
  const vocabSize = tokens.length;
  if (vocabSize < 1 || vocabSize > CAPS.vocab) fail("LLAMA_BAD_VALUE", "tokenizer.ggml.tokens", `vocabulary of ${vocabSize} tokens is outside 1..${CAPS.vocab}`);
  const declaredVocab = u32(`${arch}.vocab_size`, false, 0, 0xffffffff);
  if (declaredVocab !== undefined && declaredVocab !== vocabSize) {
    fail("LLAMA_BAD_VALUE", `${arch}.vocab_size`, `${declaredVocab} differs from the ${vocabSize} tokens`);
  }
  const typesV = md.get("tokenizer.ggml.token_type");
  if (!typesV) fail("LLAMA_MISSING_KEY", "tokenizer.ggml.token_type", "required key is missing");
  const tokenTypes = typesV.value as readonly number[];
  if (tokenTypes.length !== vocabSize) fail("LLAMA_BAD_VALUE", "tokenizer.ggml.token_type", `${tokenTypes.length} entries for ${vocabSize} tokens`);
  for (let i = 0; i < tokenTypes.length; i++) {
    const t = tokenTypes[i]!;
    if (t < 1 || t > 6) fail("LLAMA_BAD_VALUE", `tokenizer.ggml.token_type[${i}]`, `token type ${t} is not 1..6`);
  }
  const scores = md.get("tokenizer.ggml.scores");
  if (scores && (scores.value as readonly number[]).length !== vocabSize) {
    fail("LLAMA_BAD_VALUE", "tokenizer.ggml.scores", `${(scores.value as readonly number[]).length} entries for ${vocabSize} tokens`);
  }
  if (tokenizerModel === "llama") {
    // SPM byte fallback looks up <0xXX> tokens with .at(): a missing one throws inside llama.cpp.
    const index = new Map<string, number>();
    tokens.forEach((t, i) => { if (!index.has(t)) index.set(t, i); });
    for (let b = 0; b < 256; b++) {
      const name = `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
      const id = index.get(name);
      if (id === undefined) fail("LLAMA_BAD_VOCAB", "tokenizer.ggml.tokens", `SPM vocabulary lacks byte token ${name}`);
      if (tokenTypes[id] !== 6) fail("LLAMA_BAD_VOCAB", `tokenizer.ggml.token_type[${id}]`, `byte token ${name} must have type 6 (BYTE)`);
    }
  } else if (!md.get("tokenizer.ggml.merges")) {
    fail("LLAMA_MISSING_KEY", "tokenizer.ggml.merges", "a gpt2 (BPE) tokenizer needs merges");
  }
  for (const [key, v] of md) {
    if (/^tokenizer\.ggml\.[a-z_]+_token_id$/.test(key) && (v.value as number) >= vocabSize) {
      fail("LLAMA_BAD_VALUE", key, `token id ${String(v.value)} is not below the vocabulary size ${vocabSize}`);
    }
  }

  // Tensors: exactly the expected set, with the expected shapes and usable types.
  const byName = new Map(h.tensors.map((t) => [t.name, t]));
  const seen = new Set<string>();
  const qDim = headCount * headDim;
  const kvDim = headCountKv * headDim;
  const expect = (name: string, shape: number[], kind: "matrix" | "vector", required = true): void => {
    const t = byName.get(name);
    if (!t) {
      if (required) fail("LLAMA_MISSING_TENSOR", `tensor '${name}'`, "required tensor is missing");
      return;
    }
    seen.add(name);
    checkTensor(t, shape, kind);
  };
  expect("token_embd.weight", [embeddingLength, vocabSize], "matrix");
  expect("output_norm.weight", [embeddingLength], "vector");
  expect("output.weight", [embeddingLength, vocabSize], "matrix", false);
  expect("rope_freqs.weight", [(ropeDims ?? headDim) / 2], "vector", false);
  for (let i = 0; i < blockCount; i++) {
    const b = `blk.${i}.`;
    expect(`${b}attn_norm.weight`, [embeddingLength], "vector");
    expect(`${b}attn_q.weight`, [embeddingLength, qDim], "matrix");
    expect(`${b}attn_k.weight`, [embeddingLength, kvDim], "matrix");
    expect(`${b}attn_v.weight`, [embeddingLength, kvDim], "matrix");
    expect(`${b}attn_output.weight`, [qDim, embeddingLength], "matrix");
    expect(`${b}attn_q.bias`, [qDim], "vector", false);
    expect(`${b}attn_k.bias`, [kvDim], "vector", false);
    expect(`${b}attn_v.bias`, [kvDim], "vector", false);
    expect(`${b}attn_output.bias`, [embeddingLength], "vector", false);
    expect(`${b}ffn_norm.weight`, [embeddingLength], "vector");
    expect(`${b}ffn_gate.weight`, [embeddingLength, feedForwardLength], "matrix");
    expect(`${b}ffn_up.weight`, [embeddingLength, feedForwardLength], "matrix");
    expect(`${b}ffn_down.weight`, [feedForwardLength, embeddingLength], "matrix");
    expect(`${b}ffn_gate.bias`, [feedForwardLength], "vector", false);
    expect(`${b}ffn_up.bias`, [feedForwardLength], "vector", false);
    expect(`${b}ffn_down.bias`, [embeddingLength], "vector", false);
  }
  for (const t of h.tensors) {
    if (!seen.has(t.name)) fail("LLAMA_UNEXPECTED_TENSOR", `tensor '${t.name}'`, "llama.cpp does not expect this tensor for this model", t.infoOffset);
  }
  return {
    architecture: arch, contextLength, embeddingLength, blockCount, feedForwardLength, headCount, headCountKv,
    headDim, rmsEpsilon, vocabSize, tokenizerModel, tiedOutput: !byName.has("output.weight"),
  };
}

function checkTensor(t: GgufTensorInfo, shape: number[], kind: "matrix" | "vector"): void {
  const field = `tensor '${t.name}'`;
  const ne = [...t.ne];
  while (ne.length > shape.length && ne[ne.length - 1] === 1) ne.pop();
  if (ne.length !== shape.length || ne.some((d, i) => d !== shape[i])) {
    fail("LLAMA_BAD_SHAPE", field, `shape [${t.ne.join(", ")}], expected [${shape.join(", ")}]`, t.infoOffset);
  }
  if (kind === "vector" && t.type !== GgmlType.F32) {
    fail("LLAMA_BAD_TENSOR_TYPE", field, `${ggmlTypeName(t.type)}: norms and biases must be F32`, t.infoOffset);
  }
  if (kind === "matrix" && !MATMUL_TYPES.has(t.type)) {
    fail("LLAMA_BAD_TENSOR_TYPE", field, `${ggmlTypeName(t.type)} is not a weight type llama.cpp's CPU backend multiplies`, t.infoOffset);
  }
}
