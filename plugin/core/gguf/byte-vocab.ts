/**
 * The smallest vocabulary llama.cpp's SPM tokenizer accepts for arbitrary text: `<unk>`,
 * `<s>`, `</s>`, the 256 byte tokens `<0x00>`..`<0xFF>` and `▁`. Every byte of input becomes
 * one byte token, so prompts and answers map to tokens exactly. Used by generated models.
 */
import { kv, type GgufMetadata } from "./types.js";

export const BYTE_VOCAB = { unk: 0, bos: 1, eos: 2, byteBase: 3, space: 259, size: 260 } as const;

export function byteLevelSpmVocab(): { tokens: string[]; types: number[] } {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(6);
  }
  tokens.push("\u2581");
  types.push(1);
  return { tokens, types };
}

export interface LlamaDims {
  readonly contextLength: number;
  readonly nEmbd: number;
  readonly nLayer: number;
  readonly nFf: number;
  readonly nHead: number;
  readonly nHeadKv: number;
  readonly rmsEpsilon: number;
}

/** Metadata for a llama model with the byte-level vocabulary. */
export function llamaMetadata(d: LlamaDims, name: string, fileType: number): GgufMetadata {
  const { tokens, types } = byteLevelSpmVocab();
  return new Map([
    ["general.architecture", kv.str("llama")],
    ["general.name", kv.str(name)],
    ["general.file_type", kv.u32(fileType)],
    ["general.quantization_version", kv.u32(2)],
    ["llama.context_length", kv.u32(d.contextLength)],
    ["llama.embedding_length", kv.u32(d.nEmbd)],
    ["llama.block_count", kv.u32(d.nLayer)],
    ["llama.feed_forward_length", kv.u32(d.nFf)],
    ["llama.attention.head_count", kv.u32(d.nHead)],
    ["llama.attention.head_count_kv", kv.u32(d.nHeadKv)],
    ["llama.attention.layer_norm_rms_epsilon", kv.f32(d.rmsEpsilon)],
    ["llama.rope.dimension_count", kv.u32(d.nEmbd / d.nHead)],
    ["llama.rope.freq_base", kv.f32(10000)],
    ["llama.vocab_size", kv.u32(tokens.length)],
    ["tokenizer.ggml.model", kv.str("llama")],
    ["tokenizer.ggml.tokens", kv.strs(tokens)],
    ["tokenizer.ggml.scores", kv.f32s(tokens.map(() => 0))],
    ["tokenizer.ggml.token_type", kv.i32s(types)],
    ["tokenizer.ggml.bos_token_id", kv.u32(BYTE_VOCAB.bos)],
    ["tokenizer.ggml.eos_token_id", kv.u32(BYTE_VOCAB.eos)],
    ["tokenizer.ggml.unknown_token_id", kv.u32(BYTE_VOCAB.unk)],
    ["tokenizer.ggml.add_bos_token", kv.bool(true)],
    ["tokenizer.ggml.add_eos_token", kv.bool(false)],
    ["tokenizer.ggml.add_space_prefix", kv.bool(false)],
  ]);
}

/** The tensors of a dense llama model, in llama.cpp's order. */
export function llamaTensorShapes(d: LlamaDims, nVocab: number): Array<{ name: string; ne: number[]; matrix: boolean }> {
  const hd = d.nEmbd / d.nHead;
  const out: Array<{ name: string; ne: number[]; matrix: boolean }> = [
    { name: "token_embd.weight", ne: [d.nEmbd, nVocab], matrix: true },
  ];
  for (let i = 0; i < d.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push(
      { name: `${b}attn_norm.weight`, ne: [d.nEmbd], matrix: false },
      { name: `${b}attn_q.weight`, ne: [d.nEmbd, d.nHead * hd], matrix: true },
      { name: `${b}attn_k.weight`, ne: [d.nEmbd, d.nHeadKv * hd], matrix: true },
      { name: `${b}attn_v.weight`, ne: [d.nEmbd, d.nHeadKv * hd], matrix: true },
      { name: `${b}attn_output.weight`, ne: [d.nHead * hd, d.nEmbd], matrix: true },
      { name: `${b}ffn_norm.weight`, ne: [d.nEmbd], matrix: false },
      { name: `${b}ffn_gate.weight`, ne: [d.nEmbd, d.nFf], matrix: true },
      { name: `${b}ffn_down.weight`, ne: [d.nFf, d.nEmbd], matrix: true },
      { name: `${b}ffn_up.weight`, ne: [d.nEmbd, d.nFf], matrix: true },
    );
  }
  out.push({ name: "output_norm.weight", ne: [d.nEmbd], matrix: false }, { name: "output.weight", ne: [d.nEmbd, nVocab], matrix: true });
  return out;
}
