/**
 * A human- and JSON-friendly summary of a GGUF header: architecture, hyperparameters, tensor
 * table and FFN neurons per layer. Pure: it reads only the parsed header.
 */
import { SecNeuronError } from "../../errors.js";
import { GgufValueType, ggmlTypeName } from "./constants.js";
import { validateLlamaModel, type LlamaHyperparams } from "./llama-check.js";
import type { GgufHeader, GgufValue } from "./types.js";
import { decodeSealedMetadata, isSealed, verifySealedHeader } from "../seal/sealed-metadata.js";
import { nodeRows } from "../seal/plan.js";
import { nodeHeadCount, nodeNeuronCount } from "../policy/tree.js";

export interface SealedSummary {
  readonly version: number;
  readonly scheme: string;
  readonly authority: string;
  readonly issuer: string;
  readonly plaintextSha256: string;
  readonly signatureValid: boolean;
  readonly nodes: ReadonlyArray<{ id: string; tasks: readonly string[]; policies: readonly string[]; neurons: number; heads: number; rows: number; bytes: number; perLayer: Record<string, number>; headsPerLayer: Record<string, number> }>;
  readonly sealedNeurons: number;
  /** Attention head groups sealed, all nodes. */
  readonly sealedHeads: number;
  readonly sealedBytes: number;
  /** Per task: neurons in nodes that serve it. */
  readonly neuronsPerTask: Record<string, number>;
}

export interface TensorRow {
  readonly name: string;
  readonly type: string;
  readonly shape: readonly number[];
  readonly bytes: number;
  readonly offset: number;
}

export interface ModelSummary {
  readonly ggufVersion: number;
  readonly fileSize: number;
  readonly dataOffset: number;
  readonly alignment: number;
  readonly architecture: string | null;
  readonly name: string | null;
  readonly hyperparams: LlamaHyperparams | null;
  /** Why the file would not load in llama.cpp, or null when it passes validation. */
  readonly llamaCheck: { readonly code: string; readonly message: string } | null;
  readonly metadataCount: number;
  readonly tensorCount: number;
  readonly parameterCount: number;
  readonly tensorBytes: number;
  readonly bytesByType: Readonly<Record<string, number>>;
  /** FFN neurons (rows of blk.N.ffn_gate) per layer. */
  readonly ffnNeuronsPerLayer: readonly number[];
  readonly tensors: readonly TensorRow[];
  /** Present for sealed models: the policy tree; or the reason the sealed metadata is invalid. */
  readonly sealed?: SealedSummary | { readonly error: { code: string; message: string } };
  /** Small metadata values (long arrays summarized). */
  readonly metadata: Readonly<Record<string, unknown>>;
}

function displayValue(v: GgufValue): unknown {
  if (v.type === GgufValueType.ARRAY) {
    const arr = v.value as readonly unknown[];
    if (arr.length <= 16) return arr.map((x) => (typeof x === "bigint" ? x.toString() : x));
    return `[${arr.length} × type ${v.itemType}]`;
  }
  if (typeof v.value === "bigint") return v.value.toString();
  if (typeof v.value === "string" && v.value.length > 200) return `${v.value.slice(0, 200)}… (${v.value.length} chars)`;
  return v.value;
}

export function summarizeGguf(h: GgufHeader): ModelSummary {
  const arch = h.metadata.get("general.architecture");
  const name = h.metadata.get("general.name");
  let hyperparams: LlamaHyperparams | null = null;
  let llamaCheck: ModelSummary["llamaCheck"] = null;
  try {
    hyperparams = validateLlamaModel(h);
  } catch (e) {
    if (!(e instanceof SecNeuronError)) throw e;
    llamaCheck = { code: e.code, message: e.message };
  }
  const bytesByType: Record<string, number> = {};
  let parameterCount = 0;
  let tensorBytes = 0;
  const ffn: number[] = [];
  const tensors = h.tensors.map((t) => {
    const type = ggmlTypeName(t.type);
    bytesByType[type] = (bytesByType[type] ?? 0) + t.byteLength;
    parameterCount += t.ne.reduce((a, b) => a * b, 1);
    tensorBytes += t.byteLength;
    const m = /^blk\.(\d+)\.ffn_gate\.weight$/.exec(t.name);
    if (m) ffn[Number(m[1])] = t.ne.slice(1).reduce((a, b) => a * b, 1);
    return { name: t.name, type, shape: t.ne, bytes: t.byteLength, offset: t.offset };
  });
  let sealed: ModelSummary["sealed"];
  if (isSealed(h.metadata)) {
    try {
      if (!hyperparams) throw new SecNeuronError("SEALED_NOT_LOADABLE", "the sealed model does not pass llama.cpp validation");
      const info = decodeSealedMetadata(h, hyperparams);
      const nodes = info.nodes.map((n) => {
        const rows = nodeRows(h, hyperparams!, n);
        return {
          id: n.id, tasks: n.tasks, policies: n.policies, neurons: nodeNeuronCount(n), heads: nodeHeadCount(n), rows: rows.length,
          bytes: rows.reduce((a, r) => a + r.length, 0),
          perLayer: Object.fromEntries([...n.neurons].map(([l, idx]) => [String(l), idx.length])),
          headsPerLayer: Object.fromEntries([...n.heads].map(([l, idx]) => [String(l), idx.length])),
        };
      });
      const neuronsPerTask: Record<string, number> = {};
      for (const n of nodes) for (const t of n.tasks) neuronsPerTask[t] = (neuronsPerTask[t] ?? 0) + n.neurons;
      sealed = {
        version: info.version, scheme: info.scheme, authority: info.authority, issuer: info.issuer, plaintextSha256: info.plaintextSha256,
        signatureValid: verifySealedHeader(h, info), nodes, neuronsPerTask,
        sealedNeurons: nodes.reduce((a, n) => a + n.neurons, 0), sealedHeads: nodes.reduce((a, n) => a + n.heads, 0), sealedBytes: nodes.reduce((a, n) => a + n.bytes, 0),
      };
    } catch (e) {
      if (!(e instanceof SecNeuronError)) throw e;
      sealed = { error: { code: e.code, message: e.message } };
    }
  }
  const metadata: Record<string, unknown> = {};
  for (const [k, v] of h.metadata) metadata[k] = displayValue(v);
  return {
    ggufVersion: h.version,
    fileSize: h.fileSize,
    dataOffset: h.dataOffset,
    alignment: h.alignment,
    architecture: arch?.type === GgufValueType.STRING ? arch.value : null,
    name: name?.type === GgufValueType.STRING ? name.value : null,
    hyperparams,
    llamaCheck,
    metadataCount: h.metadata.size,
    tensorCount: h.tensors.length,
    parameterCount,
    tensorBytes,
    bytesByType,
    ffnNeuronsPerLayer: Array.from(ffn, (n) => n ?? 0),
    tensors,
    ...(sealed ? { sealed } : {}),
    metadata,
  };
}
