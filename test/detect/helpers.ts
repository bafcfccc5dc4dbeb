/** Shared pieces of the detection tests and benchmark. */
import { GGML_TYPES, GgmlType } from "../../plugin/core/gguf/constants.js";
import { TIER2_MAX_BLOCKS } from "../../plugin/core/detect/classify.js";
import { BLOCK_LAYOUTS } from "../../plugin/core/detect/layouts.js";
import type { Cell } from "./corpus.js";

/**
 * Cells where the detector has enough evidence for a per-row FN bound below ~1e-9 (see
 * docs/detection.md): float rows, and quantized rows with >= TIER2_MAX_BLOCKS blocks when the
 * type has two scale fields or a sign constraint, >= 40 blocks otherwise; plus Q8_0 rows of >= 8
 * blocks and Q6_K rows of >= 4 (quantizer invariants).
 */
export function decidable(c: Cell): boolean {
  if (c.type === GgmlType.F32 || c.type === GgmlType.BF16 || c.type === GgmlType.F16) return true;
  const nb = c.ne0 / GGML_TYPES.get(c.type)!.blockSize;
  if (c.type === GgmlType.Q8_0 && nb >= 8) return true;
  if (c.type === GgmlType.Q6_K && nb >= 4) return true;
  const layout = BLOCK_LAYOUTS.get(c.type);
  if (!layout) return false;
  const strong = layout.fields.length > 1 || layout.fields.some((f) => f.nonNegative);
  return nb >= (strong ? TIER2_MAX_BLOCKS : 40);
}
