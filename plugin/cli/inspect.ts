/** `secneuron inspect <file>`: what a GGUF holds, reading only its header (and data if --digest). */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { UsageError } from "../errors.js";
import { readGgufHeader } from "../edges/gguf-file.js";
import { summarizeGguf, type ModelSummary } from "../core/gguf/summary.js";
import type { Command } from "./args.js";
import { formatBytes, progressBar } from "./progress.js";

async function sha256File(path: string, size: number, onProgress?: (done: number) => void): Promise<string> {
  const hash = createHash("sha256");
  let done = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) {
    hash.update(chunk as Buffer);
    done += (chunk as Buffer).length;
    onProgress?.(done);
  }
  if (done !== size) throw new Error(`file changed while hashing (${done} of ${size} bytes)`);
  return hash.digest("hex");
}

function renderText(path: string, s: ModelSummary, digest: string | undefined, showAll: boolean): string {
  const lines: string[] = [];
  lines.push(`file          ${path}`);
  lines.push(`size          ${formatBytes(s.fileSize)} (${s.fileSize} bytes), GGUF v${s.ggufVersion}, data at ${s.dataOffset}, alignment ${s.alignment}`);
  if (digest) lines.push(`sha256        ${digest}`);
  lines.push(`architecture  ${s.architecture ?? "(none)"}${s.name ? `  name: ${s.name}` : ""}`);
  lines.push(`parameters    ${s.parameterCount.toLocaleString("en-US")} in ${s.tensorCount} tensors, ${formatBytes(s.tensorBytes)}`);
  lines.push(`types         ${Object.entries(s.bytesByType).map(([t, b]) => `${t} ${formatBytes(b)}`).join(", ")}`);
  if (s.hyperparams) {
    const p = s.hyperparams;
    lines.push(`hyperparams   ctx ${p.contextLength}, embd ${p.embeddingLength}, layers ${p.blockCount}, ff ${p.feedForwardLength}, heads ${p.headCount}/${p.headCountKv} (dim ${p.headDim}), vocab ${p.vocabSize} (${p.tokenizerModel}), rms_eps ${Number(p.rmsEpsilon.toPrecision(6))}${p.tiedOutput ? ", tied output" : ""}`);
    lines.push(`llama.cpp     loadable (validated)`);
  } else {
    lines.push(`llama.cpp     NOT loadable: ${s.llamaCheck?.code}: ${s.llamaCheck?.message}`);
  }
  if (s.ffnNeuronsPerLayer.length) {
    const total = s.ffnNeuronsPerLayer.reduce((a, b) => a + b, 0);
    lines.push(`ffn neurons   ${total} total; per layer: ${s.ffnNeuronsPerLayer.join(", ")}`);
  }
  if (s.sealed) {
    if ("error" in s.sealed) {
      lines.push(`sealed        INVALID sealed metadata: ${s.sealed.error.code}: ${s.sealed.error.message}`);
    } else {
      const z = s.sealed;
      lines.push(`sealed        ${z.nodes.length} nodes, ${z.sealedNeurons} neurons, ${z.sealedHeads > 0 ? `${z.sealedHeads} head groups, ` : ""}${formatBytes(z.sealedBytes)} encrypted; signature ${z.signatureValid ? "valid" : "INVALID"}`);
      lines.push(`              authority ${z.authority.slice(0, 16)}…, issuer ${z.issuer.slice(0, 16)}…, plaintext sha256 ${z.plaintextSha256.slice(0, 16)}…`);
      lines.push(`              per task: ${Object.entries(z.neuronsPerTask).map(([t, n]) => `${t} ${n}`).join(", ")}`);
      lines.push("policy tree:");
      for (const n of z.nodes) {
        lines.push(`  ${n.id.padEnd(24)} ${String(n.neurons).padStart(7)} neurons ${formatBytes(n.bytes).padStart(10)}  layers ${Object.entries(n.perLayer).map(([l, c]) => `${l}:${c}`).join(" ")}`);
        if (n.heads > 0) lines.push(`  ${"".padEnd(24)} ${String(n.heads).padStart(7)} head groups  layers ${Object.entries(n.headsPerLayer).map(([l, c]) => `${l}:${c}`).join(" ")}`);
        lines.push(`  ${"".padEnd(24)} policies: ${n.policies.join(" | ")}`);
      }
    }
  }
  lines.push("");
  lines.push("tensors:");
  const rows = showAll || s.tensors.length <= 40 ? s.tensors : [...s.tensors.slice(0, 20), null, ...s.tensors.slice(-10)];
  const w = Math.max(...s.tensors.map((t) => t.name.length), 4);
  lines.push(`  ${"name".padEnd(w)}  ${"type".padEnd(7)}  ${"shape".padEnd(20)}  bytes`);
  for (const t of rows) {
    if (!t) { lines.push(`  … ${s.tensors.length - 30} more (use --all)`); continue; }
    lines.push(`  ${t.name.padEnd(w)}  ${t.type.padEnd(7)}  ${`[${t.shape.join(", ")}]`.padEnd(20)}  ${t.bytes}`);
  }
  return lines.join("\n");
}

export const inspectCommand: Command = {
  name: "inspect",
  summary: "show a GGUF model's architecture, hyperparameters, tensors and policy tree",
  help: `Usage: secneuron inspect <file.gguf> [--json] [--digest] [--all]

Reads the header of a GGUF file (no tensor data unless --digest), validates it the way
llama.cpp would load it, and prints the architecture, hyperparameters, tensor table and FFN
neurons per layer.

Options:
  --json      print one JSON object instead of text
  --digest    also compute the SHA-256 of the whole file (reads every byte)
  --all       list every tensor (text output lists 30 of large models)
  -h, --help  this help`,
  options: { digest: { type: "boolean" }, all: { type: "boolean" } },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError("CLI_USAGE", "inspect: expected exactly one file\nRun 'secneuron inspect --help' for usage.");
    const path = positionals[0]!;
    const header = readGgufHeader(path);
    const summary = summarizeGguf(header);
    let digest: string | undefined;
    if (values.digest) {
      const bar = io.isTTY && !values.json ? progressBar("sha256", header.fileSize) : undefined;
      digest = await sha256File(path, header.fileSize, bar?.update);
      bar?.done();
    }
    if (values.json) io.out(JSON.stringify({ file: path, ...(digest ? { sha256: digest } : {}), ...summary }));
    else io.out(renderText(path, summary, digest, Boolean(values.all)));
    return 0;
  },
};
