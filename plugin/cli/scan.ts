/** `secneuron scan <file>`: find rows whose bytes look like ciphertext (detection backstop). */
import { UsageError } from "../errors.js";
import { ggmlTypeName } from "../core/gguf/constants.js";
import { readGgufHeader } from "../edges/gguf-file.js";
import { isFfnNeuronTensor, isMatrixTensor, scanGguf } from "../edges/scan.js";
import type { Command } from "./args.js";
import { formatBytes, progressBar } from "./progress.js";

const SHOW_ROWS = 10;

export const scanCommand: Command = {
  name: "scan",
  summary: "detect rows that still hold ciphertext (or are zeroed) in a GGUF model",
  help: `Usage: secneuron scan <file.gguf> [--all-tensors] [--json] [--rows N]

Reads every FFN neuron row (rows of blk.N.ffn_gate and blk.N.ffn_up) and decides from the bytes
alone whether each holds real weights, ciphertext (uniformly random bytes) or zeros. See
docs/detection.md for the tests and their error rates. Exit status 0 whether or not rows look
encrypted; the report says how many.

Options:
  --all-tensors  scan every 2-D tensor, not only ffn_gate/ffn_up
  --rows N       list up to N encrypted row ids per tensor (default ${SHOW_ROWS})
  --json         print one JSON object
  -h, --help     this help`,
  options: { "all-tensors": { type: "boolean" }, rows: { type: "string" } },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError("CLI_USAGE", "scan: expected exactly one file\nRun 'secneuron scan --help' for usage.");
    const show = values.rows === undefined ? SHOW_ROWS : Number(values.rows);
    if (!Number.isInteger(show) || show < 0) throw new UsageError("CLI_USAGE", `scan: --rows must be a non-negative integer, got '${String(values.rows)}'`);
    const path = positionals[0]!;
    const all = Boolean(values["all-tensors"]);
    const header = readGgufHeader(path);
    const total = header.tensors.filter(all ? isMatrixTensor : isFfnNeuronTensor).reduce((a, t) => a + t.byteLength, 0);
    const bar = io.isTTY && !values.json ? progressBar("scan", total) : undefined;
    const res = await scanGguf(path, { allTensors: all, onProgress: bar?.update });
    bar?.done();
    const byTensor = new Map<string, number[]>();
    for (const e of res.encrypted) {
      const l = byTensor.get(e.tensor) ?? [];
      if (l.length < show) l.push(e.row);
      byTensor.set(e.tensor, l);
    }
    const gbps = res.seconds > 0 ? res.bytesScanned / res.seconds / 1e9 : 0;
    const tensors = res.perTensor.map((t) => ({ ...t, type: ggmlTypeName(t.type), firstEncryptedRows: byTensor.get(t.tensor) ?? [] }));
    if (values.json) {
      io.out(JSON.stringify({ file: path, rowsScanned: res.rowsScanned, encryptedRows: res.encrypted.length, zeroedRows: res.zeroed, bytesScanned: res.bytesScanned, seconds: res.seconds, gbPerSecond: gbps, tensors }));
      return 0;
    }
    const lines = [
      `file       ${path}`,
      `scanned    ${res.rowsScanned} rows in ${tensors.length} tensors, ${formatBytes(res.bytesScanned)} in ${res.seconds.toFixed(3)} s (${gbps.toFixed(2)} GB/s)`,
      `encrypted  ${res.encrypted.length} rows look like ciphertext`,
      `zeroed     ${res.zeroed} rows are all zero`,
    ];
    const flagged = tensors.filter((t) => t.encrypted > 0 || t.zeroed > 0);
    if (flagged.length) {
      lines.push("", "tensors with encrypted or zeroed rows:");
      const w = Math.max(...flagged.map((t) => t.tensor.length), 6);
      for (const t of flagged) {
        const ids = t.firstEncryptedRows.length ? `  rows ${t.firstEncryptedRows.join(", ")}${t.encrypted > t.firstEncryptedRows.length ? ", …" : ""}` : "";
        lines.push(`  ${t.tensor.padEnd(w)}  ${t.type.padEnd(6)}  ${String(t.encrypted).padStart(7)} encrypted  ${String(t.zeroed).padStart(7)} zeroed / ${t.rows}${ids}`);
      }
    }
    io.out(lines.join("\n"));
    return 0;
  },
};
