/**
 * Where a node's sealed rows are: neuron i of layer l is row i of blk.l.ffn_gate.weight and row i
 * of blk.l.ffn_up.weight. Head group g of layer l (r = n_head / n_head_kv, hd = head dim) is rows
 * [g*r*hd, (g+1)*r*hd) of blk.l.attn_q.weight and rows [g*hd, (g+1)*hd) of blk.l.attn_k.weight and
 * blk.l.attn_v.weight. The order (FFN neurons: layer asc, neuron asc, gate then up; then head
 * groups: layer asc, group asc, q rows, k rows, v rows ascending) is the order of the node's tags
 * in the sealed metadata and of every batch handed to a cipher backend.
 */
import { GgufFormatError } from "../../errors.js";
import { rowRange } from "../gguf/rows.js";
import type { GgufHeader } from "../gguf/types.js";
import type { LlamaHyperparams } from "../gguf/llama-check.js";
import type { TreeNode } from "../policy/tree.js";

export interface SealedRow {
  /** Index of the tensor in the file's tensor list: the tensorId of the row cipher. */
  readonly tensorId: number;
  readonly row: number;
  /** Absolute byte range in the file. */
  readonly offset: number;
  readonly length: number;
}

/** The hyperparameters the row map needs (a subset of LlamaHyperparams). */
export type ModelShape = Pick<LlamaHyperparams, "feedForwardLength" | "blockCount" | "headCount" | "headCountKv" | "headDim">;

/** Rows per attention head group: r*hd rows of attn_q, hd of attn_k, hd of attn_v (r = n_head / n_head_kv). */
export function headGroupRowCount(hp: Pick<ModelShape, "headCount" | "headCountKv" | "headDim">): number {
  if (hp.headCountKv <= 0 || hp.headCount % hp.headCountKv !== 0) return 0;
  return (hp.headCount / hp.headCountKv + 2) * hp.headDim;
}

export function nodeRows(header: GgufHeader, hp: ModelShape, node: Pick<TreeNode, "neurons" | "heads" | "id">): SealedRow[] {
  const index = new Map(header.tensors.map((t, i) => [t.name, i]));
  const out: SealedRow[] = [];
  const tensorId = (layer: number, kind: string, what: string): number => {
    const name = `blk.${layer}.${kind}.weight`;
    const id = index.get(name);
    if (id === undefined) throw new GgufFormatError("SEAL_MISSING_TENSOR", name, undefined, `node '${node.id}' seals ${what} of layer ${layer} but the model has no ${name}`);
    return id;
  };
  const push = (id: number, row: number): void => {
    const r = rowRange(header, header.tensors[id]!, row);
    out.push({ tensorId: id, row, offset: r.offset, length: r.length });
  };
  for (const [layer, neurons] of node.neurons) {
    const ids = ["ffn_gate", "ffn_up"].map((kind) => tensorId(layer, kind, "neurons"));
    for (const neuron of neurons) for (const id of ids) push(id, neuron);
  }
  if (node.heads.size === 0) return out;
  const { headCount, headCountKv, headDim: hd } = hp;
  if (headCountKv <= 0 || headCount % headCountKv !== 0) {
    throw new GgufFormatError("SEAL_BAD_HEADS", "attention", undefined, `node '${node.id}' seals head groups but n_head ${headCount} is not a multiple of n_head_kv ${headCountKv}`);
  }
  const r = headCount / headCountKv;
  for (const [layer, groups] of node.heads) {
    const [q, k, v] = ["attn_q", "attn_k", "attn_v"].map((kind) => tensorId(layer, kind, "head groups")) as [number, number, number];
    for (const g of groups) {
      if (g >= headCountKv) throw new GgufFormatError("SEAL_BAD_HEADS", `blk.${layer}.attn_q.weight`, undefined, `node '${node.id}' seals head group ${g} of layer ${layer}, the model has ${headCountKv}`);
      for (let row = g * r * hd; row < (g + 1) * r * hd; row++) push(q, row);
      for (let row = g * hd; row < (g + 1) * hd; row++) push(k, row);
      for (let row = g * hd; row < (g + 1) * hd; row++) push(v, row);
    }
  }
  return out;
}
