/**
 * Where a node's sealed rows are: neuron i of layer l is row i of blk.l.ffn_gate.weight and row i
 * of blk.l.ffn_up.weight. The order (layer asc, neuron asc, gate then up) is the order of the
 * node's tags in the sealed metadata and of every batch handed to a cipher backend.
 */
import { GgufFormatError } from "../../errors.js";
import { rowRange } from "../gguf/rows.js";
import type { GgufHeader } from "../gguf/types.js";
import type { TreeNode } from "../policy/tree.js";

export interface SealedRow {
  /** Index of the tensor in the file's tensor list: the tensorId of the row cipher. */
  readonly tensorId: number;
  readonly row: number;
  /** Absolute byte range in the file. */
  readonly offset: number;
  readonly length: number;
}

export function nodeRows(header: GgufHeader, node: Pick<TreeNode, "neurons" | "id">): SealedRow[] {
  const index = new Map(header.tensors.map((t, i) => [t.name, i]));
  const out: SealedRow[] = [];
  for (const [layer, neurons] of node.neurons) {
    const ids = ["ffn_gate", "ffn_up"].map((kind) => {
      const name = `blk.${layer}.${kind}.weight`;
      const id = index.get(name);
      if (id === undefined) throw new GgufFormatError("SEAL_MISSING_TENSOR", name, undefined, `node '${node.id}' seals layer ${layer} but the model has no ${name}`);
      return id;
    });
    for (const neuron of neurons) {
      for (const tensorId of ids) {
        const r = rowRange(header, header.tensors[tensorId]!, neuron);
        out.push({ tensorId, row: neuron, offset: r.offset, length: r.length });
      }
    }
  }
  return out;
}
