/** Weight-norm importances read from a GGUF: per layer, per FFN neuron, the norm of its gate and up rows. */
import { closeSync, openSync, readSync } from "node:fs";
import { GgmlType } from "../../core/gguf/constants.js";
import { decodeTensorData } from "../../core/gguf/quant.js";
import { rowL2Norms, weightNormImportance } from "../../core/eval/selection.js";
import { readGgufHeader } from "../gguf-file.js";
import { EvalError } from "./tasks.js";

const SUPPORTED = new Set<number>([GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0]);

export function ffnWeightNorms(modelPath: string, blockCount: number): Map<number, number[]> {
  const h = readGgufHeader(modelPath);
  const byName = new Map(h.tensors.map((t) => [t.name, t]));
  const fd = openSync(modelPath, "r");
  try {
    const norms = (name: string): Float64Array => {
      const t = byName.get(name);
      if (!t) throw new EvalError("EVAL_MISSING_TENSOR", `${modelPath}: no tensor ${name}`);
      if (!SUPPORTED.has(t.type)) throw new EvalError("EVAL_UNSUPPORTED_TYPE", `${name}: ggml type ${t.type} is not supported for weight norms (F32, F16, BF16, Q8_0, Q4_0, Q5_0)`);
      const buf = Buffer.allocUnsafe(t.byteLength);
      let got = 0;
      while (got < t.byteLength) {
        const r = readSync(fd, buf, got, t.byteLength - got, h.dataOffset + t.offset + got);
        if (r === 0) throw new EvalError("EVAL_TRUNCATED", `${modelPath}: ${name} is truncated`);
        got += r;
      }
      const n = t.ne.reduce((a, b) => a * b, 1);
      return rowL2Norms(decodeTensorData(t.type, buf, n), t.ne[0]!);
    };
    const out = new Map<number, number[]>();
    for (let l = 0; l < blockCount; l++) out.set(l, weightNormImportance(norms(`blk.${l}.ffn_gate.weight`), norms(`blk.${l}.ffn_up.weight`)));
    return out;
  } finally {
    closeSync(fd);
  }
}
