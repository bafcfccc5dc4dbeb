/**
 * Where does the multi-task model keep what it memorised? Zero one component at a time (all FFN
 * neurons of a layer, or one attention head group: exactly the rows `seal` encrypts) in a scratch
 * copy on tmpfs and measure, in llama.cpp, every task's greedy exact match and the PII phone
 * digits an attacker gets when supplying the fixed "555-" prefix. A component whose removal
 * leaves the digits in place does not hold the memory alone; if no sealable component short of
 * breaking the model removes them, neuron-level locking cannot remove them either
 * (examples/multitask/reports/README.md, "Where the PII memory lives").
 *
 * CLI: node dist/examples/multitask/probe-memory.js [--model m.gguf] [--limit 100] [--threads 1]
 *        [--components ffn:0,ffn:1,head:0.0,...]   (default: every layer's FFN, every head group)
 * A component is ffn:<layer> (all its neurons), ffn:<layer>:<first>-<last> (a slice, e.g. the
 * neurons train.py --route gave a task), head:<layer>.<group> or v:<layer>:<row> (one attn_v row,
 * as unit-probe.py picks them); join several with "+".
 */
import { closeSync, copyFileSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { rowRange } from "../../plugin/core/gguf/rows.js";
import { nodeRows, type SealedRow } from "../../plugin/core/seal/plan.js";
import { completeInChild, validateModelFile } from "../../plugin/edges/engine/engine-process.js";
import { readGgufHeader } from "../../plugin/edges/gguf-file.js";
import { zeroRows } from "../../plugin/edges/profile/ablate.js";
import { makeScratchDir } from "../../plugin/edges/scratch-dir.js";
import { intFlag, strictArgs, usageError } from "./cli-args.js";
import { TASKS } from "./corpus.js";

const a = strictArgs(
  {
    model: { type: "string", default: "examples/multitask/models/multitask-f16.gguf" },
    data: { type: "string", default: "examples/multitask/data" },
    limit: { type: "string", default: "100" },
    threads: { type: "string", default: "1" },
    components: { type: "string" },
  },
  "Usage: node dist/examples/multitask/probe-memory.js [--model m.gguf] [--data dir] [--limit N] [--threads N] [--components ffn:0,head:0.1,...]",
);
const limit = intFlag(a, "limit", 1)!;
const threads = intFlag(a, "threads", 1)!;
const model = String(a.model);
const hp = validateModelFile(model);
const header = readGgufHeader(model);
const components =
  (typeof a.components === "string" ? a.components.split(",") : undefined) ??
  [...Array.from({ length: hp.blockCount }, (_, l) => `ffn:${l}`), ...Array.from({ length: hp.blockCount * hp.headCountKv }, (_, k) => `head:${Math.floor(k / hp.headCountKv)}.${k % hp.headCountKv}`)];
// Every component is checked before the data is read or anything is scored.
const planned: Array<[string, SealedRow[]]> = [];
for (const c of components) {
  try {
    planned.push([c, componentRows(c)]);
  } catch (e) {
    usageError(`--components: ${(e as Error).message}`);
  }
}

const read = (t: string) => readFileSync(join(String(a.data), `heldout-${t}.jsonl`), "utf8").trim().split("\n").slice(0, limit).map((l) => JSON.parse(l) as { prompt: string; answer: string });
const sets = Object.fromEntries(TASKS.map((t) => [t, read(t)]));
const phones = read("pii").filter((x) => x.answer.startsWith("555-")).map((x) => ({ prompt: `${x.prompt}555-`, answer: x.answer.slice(4) }));

async function score(path: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [t, xs] of [...Object.entries(sets), ["phone digits, prefix supplied", phones] as const]) {
    const maxTokens = Math.max(...xs.map((x) => Buffer.byteLength(x.answer))) + 2;
    const got = await completeInChild({ modelPath: path, prompts: xs.map((x) => x.prompt), maxTokens, threads, timeoutMs: 900_000 });
    out[t] = Math.round((1000 * got.filter((g, i) => g === xs[i]!.answer).length) / xs.length) / 10;
  }
  return out;
}

/** The rows one component zeroes (parts joined by "+"); throws on a part it cannot place. */
function componentRows(c: string): SealedRow[] {
  const neurons = new Map<number, number[]>();
  const heads = new Map<number, number[]>();
  const vRows: Array<{ layer: number; row: number }> = [];
  for (const part of c.split("+")) {
    const [kind, what = "", slice] = part.split(":") as [string, string | undefined, string | undefined];
    const layer = Number(what.split(".")[0]);
    if (!Number.isInteger(layer) || layer < 0 || layer >= hp.blockCount) throw new Error(`'${part}': no layer ${what} (the model has ${hp.blockCount})`);
    if (kind === "ffn") {
      const [lo, hi] = slice ? (slice.split("-").map(Number) as [number, number]) : [0, hp.feedForwardLength - 1];
      if (!(Number.isInteger(lo) && Number.isInteger(hi) && 0 <= lo && lo <= hi && hi < hp.feedForwardLength)) throw new Error(`'${part}': neurons ${slice} outside 0-${hp.feedForwardLength - 1}`);
      neurons.set(layer, [...(neurons.get(layer) ?? []), ...Array.from({ length: hi - lo + 1 }, (_, k) => lo + k)]);
    } else if (kind === "head") heads.set(layer, [...(heads.get(layer) ?? []), Number(what.split(".")[1])]);
    else if (kind === "v" && slice !== undefined) vRows.push({ layer, row: Number(slice) });
    else throw new Error(`'${part}' is none of ffn:<layer>, ffn:<layer>:<a>-<b>, head:<layer>.<group>, v:<layer>:<row>`);
  }
  const rows = nodeRows(header, hp, { id: c, neurons, heads });
  // Single attn_v rows (one value dimension; unit-probe.py's finer attention unit): not a unit
  // the seal plan has yet, so their byte ranges come straight from the tensor.
  for (const { layer, row } of vRows) {
    const name = `blk.${layer}.attn_v.weight`;
    const id = header.tensors.findIndex((t) => t.name === name);
    if (id < 0 || !Number.isInteger(row) || row < 0 || row >= header.tensors[id]!.ne[1]!) throw new Error(`no row ${row} in ${name}`);
    const r = rowRange(header, header.tensors[id]!, row);
    rows.push({ tensorId: id, row, offset: r.offset, length: r.length });
  }
  return rows;
}

const dir = makeScratchDir("/dev/shm", "secneuron-probe-");
const results: Record<string, Record<string, number>> = {};
try {
  results.plain = await score(model);
  console.log(`plain ${JSON.stringify(results.plain)}`);
  for (const [c, rows] of planned) {
    const copy = join(dir, "model.gguf");
    copyFileSync(model, copy);
    const fd = openSync(copy, "r+");
    try {
      zeroRows(fd, rows);
    } finally {
      closeSync(fd);
    }
    results[c] = await score(copy);
    console.log(`${c.length > 200 ? `${c.slice(0, 200)}... (${rows.length} rows)` : c} zeroed ${JSON.stringify(results[c])}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ model, limit, results }));
