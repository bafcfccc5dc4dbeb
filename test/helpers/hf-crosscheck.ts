/**
 * Independent cross-check: parse a file with @huggingface/gguf and compare its metadata (values
 * and wire types) and tensor table with ours. Returns the list of disagreements (empty = agree).
 */
import { gguf } from "@huggingface/gguf";
import { GgufValueType } from "../../plugin/core/gguf/constants.js";
import type { GgufHeader } from "../../plugin/core/gguf/types.js";

function norm(v: unknown): unknown {
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "number") return Object.is(v, -0) ? 0 : Number.isNaN(v) ? "NaN" : v;
  if (Array.isArray(v)) return v.map(norm);
  return v;
}

export async function hfDisagreements(path: string, ours: GgufHeader): Promise<string[]> {
  const hf = await gguf(path, { allowLocalFile: true, typedMetadata: true });
  const diffs: string[] = [];
  const tm = hf.typedMetadata as Record<string, { value: unknown; type: number; subType?: number }>;
  // hf adds version/tensor_count/kv_count pseudo-keys
  const hfKeys = Object.keys(tm).filter((k) => !["version", "tensor_count", "kv_count"].includes(k));
  if (hfKeys.length !== ours.metadata.size) diffs.push(`metadata count: hf ${hfKeys.length}, ours ${ours.metadata.size}`);
  for (const [key, v] of ours.metadata) {
    const h = tm[key];
    if (!h) { diffs.push(`hf lacks key ${key}`); continue; }
    if (h.type !== v.type) diffs.push(`${key}: type hf ${h.type}, ours ${v.type}`);
    if (v.type === GgufValueType.ARRAY && h.subType !== v.itemType) diffs.push(`${key}: item type hf ${h.subType}, ours ${v.itemType}`);
    let ov: unknown = v.value;
    if (v.type === GgufValueType.FLOAT32) ov = Math.fround(v.value);
    if (JSON.stringify(norm(h.value)) !== JSON.stringify(norm(ov))) diffs.push(`${key}: value differs`);
  }
  if (hf.tensorInfos.length !== ours.tensors.length) diffs.push(`tensor count: hf ${hf.tensorInfos.length}, ours ${ours.tensors.length}`);
  hf.tensorInfos.forEach((t, i) => {
    const o = ours.tensors[i];
    if (!o) return;
    if (t.name !== o.name) diffs.push(`tensor ${i}: name hf ${t.name}, ours ${o.name}`);
    if (t.dtype !== o.type) diffs.push(`tensor ${o.name}: type hf ${t.dtype}, ours ${o.type}`);
    if (t.shape.map(Number).join(",") !== o.ne.join(",")) diffs.push(`tensor ${o.name}: shape hf ${t.shape}, ours ${o.ne}`);
    if (Number(t.offset) !== o.offset) diffs.push(`tensor ${o.name}: offset hf ${t.offset}, ours ${o.offset}`);
  });
  if (Number(hf.tensorDataOffset) !== ours.dataOffset) diffs.push(`data offset: hf ${hf.tensorDataOffset}, ours ${ours.dataOffset}`);
  return diffs;
}
