/**
 * `seal`: encrypt the selected FFN neurons (and attention head groups) of a GGUF model into a new sealed GGUF. The input is
 * only read. Two streaming passes: the first encrypts each sealed row into scratch memory to learn
 * its GCM tag (the header, written first, carries the tags), the second rewrites the file with the
 * sealed metadata and encrypts the same rows in place, checking that every tag comes out the same
 * (so an input that changes between the passes is caught). The output appears atomically.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, createReadStream, openSync, readSync } from "node:fs";
import { GgufFormatError, SecNeuronError } from "../errors.js";
import { encodeCiphertext, encrypt as abeEncrypt } from "../core/abe/fame.js";
import { RowSpanTable, ROW_TAG_BYTES } from "../core/cipher/row-cipher.js";
import { validateLlamaModel } from "../core/gguf/llama-check.js";
import type { GgufHeader, GgufMetadata } from "../core/gguf/types.js";
import { buildPolicyTree, nodeHeadCount, nodeNeuronCount, type TreeOptions } from "../core/policy/tree.js";
import type { Profile } from "../core/profile/profile.js";
import { selectNeurons, type LockSpec } from "../core/profile/select.js";
import { wrapNodeKey } from "../core/seal/node-key-wrap.js";
import { nodeRows, type SealedRow } from "../core/seal/plan.js";
import { encodeSealedMetadata, isSealed, SEALED_SCHEME, SEALED_VERSION, signSealedHeader, type SealedNode } from "../core/seal/sealed-metadata.js";
import type { Authority } from "./authority.js";
import { rowCipherBackend } from "./cipher-backend.js";
import { readGgufHeader, rewriteGguf } from "./gguf-file.js";

export class SealError extends SecNeuronError {}

export interface SealOptions {
  readonly model: string;
  readonly out: string;
  readonly profile: Profile;
  readonly lock: LockSpec;
  readonly tree?: TreeOptions;
  readonly authority: Pick<Authority, "publicParams" | "fingerprint" | "issuerKey" | "issuerSecretKey">;
  readonly onProgress?: (phase: "digest" | "tags" | "write", done: number, total: number) => void;
}

export interface SealSummary {
  readonly out: string;
  readonly plaintextSha256: string;
  readonly authority: string;
  readonly nodes: Array<{ id: string; tasks: string[]; policies: string[]; neurons: number; heads: number; rows: number; bytes: number; perLayer: Record<string, number>; headsPerLayer: Record<string, number> }>;
  readonly sealedNeurons: number;
  /** Attention head groups sealed, all nodes. */
  readonly sealedHeads: number;
  readonly sealedBytes: number;
  readonly fileSize: number;
  readonly seconds: number;
  readonly backend: string;
}

async function sha256File(path: string, size: number, onProgress?: (done: number, total: number) => void): Promise<string> {
  const h = createHash("sha256");
  let done = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 8 << 20 })) {
    h.update(chunk as Buffer);
    done += (chunk as Buffer).length;
    onProgress?.(done, size);
  }
  return h.digest("hex");
}

/** Read rows (absolute ranges) into one buffer, in order; returns the buffer and the span table. */
function readRows(fd: number, rows: readonly SealedRow[]): { buf: Buffer; spans: RowSpanTable } {
  const total = rows.reduce((s, r) => s + r.length, 0);
  const buf = Buffer.allocUnsafe(total);
  const spans = new RowSpanTable(rows.length);
  let at = 0;
  for (const r of rows) {
    if (readSync(fd, buf, at, r.length, r.offset) !== r.length) throw new GgufFormatError("GGUF_TRUNCATED", `row ${r.row} of tensor #${r.tensorId}`, r.offset, "short read");
    spans.push(at, r.length, r.tensorId, r.row);
    at += r.length;
  }
  return { buf, spans };
}

const BATCH_BYTES = 32 << 20;

function batches<T extends { length: number }>(rows: readonly T[]): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const r of rows) {
    if (bytes + r.length > BATCH_BYTES && cur.length) { out.push(cur); cur = []; bytes = 0; }
    cur.push(r);
    bytes += r.length;
  }
  if (cur.length) out.push(cur);
  return out;
}

export async function sealModel(opts: SealOptions): Promise<SealSummary> {
  const t0 = performance.now();
  const header: GgufHeader = readGgufHeader(opts.model);
  const hp = validateLlamaModel(header);
  if (isSealed(header.metadata)) throw new SealError("SEAL_ALREADY_SEALED", `${opts.model} is already sealed (it has secneuron.* metadata)`);
  const pm = opts.profile.model;
  if (pm.architecture !== hp.architecture || pm.blockCount !== hp.blockCount || pm.feedForwardLength !== hp.feedForwardLength) {
    throw new SealError("SEAL_PROFILE_MISMATCH", `profile is for ${pm.architecture} with ${pm.blockCount} blocks and FFN width ${pm.feedForwardLength}; the model has ${hp.architecture}, ${hp.blockCount}, ${hp.feedForwardLength}`);
  }
  if (pm.headGroups !== undefined && pm.headGroups !== hp.headCountKv) {
    throw new SealError("SEAL_PROFILE_MISMATCH", `profile has ${pm.headGroups} attention head groups per layer; the model has n_head_kv ${hp.headCountKv}`);
  }
  const plaintextSha256 = await sha256File(opts.model, header.fileSize, (d, t) => opts.onProgress?.("digest", d, t));
  if (pm.sha256 && pm.sha256 !== plaintextSha256) {
    throw new SealError("SEAL_PROFILE_MISMATCH", `profile was taken on a model with SHA-256 ${pm.sha256}, this one is ${plaintextSha256}`);
  }
  const selection = selectNeurons(opts.profile, opts.lock);
  const tree = buildPolicyTree(selection, opts.tree);
  if (tree.nodes.length === 0) throw new SealError("SEAL_NOTHING_SELECTED", "the lock selects no neurons (every candidate has zero importance)");
  const backend = rowCipherBackend();

  const nodeKeys = tree.nodes.map(() => new Uint8Array(randomBytes(32)));
  const nodeRowsList = tree.nodes.map((n) => nodeRows(header, hp, n));
  const fd = openSync(opts.model, "r");
  const sealedNodes: SealedNode[] = [];
  try {
    // Pass 1: tags.
    const totalRows = nodeRowsList.reduce((s, r) => s + r.length, 0);
    let doneRows = 0;
    for (let k = 0; k < tree.nodes.length; k++) {
      const node = tree.nodes[k]!;
      const rows = nodeRowsList[k]!;
      const tags = new Uint8Array(rows.length * ROW_TAG_BYTES);
      let at = 0;
      for (const batch of batches(rows)) {
        const { buf, spans } = readRows(fd, batch);
        const t = backend.encryptRows(buf, spans, nodeKeys[k]!);
        tags.set(t, at);
        at += t.length;
        buf.fill(0);
        doneRows += batch.length;
        opts.onProgress?.("tags", doneRows, totalRows);
      }
      const wrapped = node.policies.map((policy, i) => {
        const { ciphertext, key } = abeEncrypt(opts.authority.publicParams, policy);
        const w = { abe: encodeCiphertext(ciphertext), key: wrapNodeKey(key, nodeKeys[k]!, node.id, i) };
        key.fill(0);
        return w;
      });
      sealedNodes.push({ ...node, wrapped, tags });
    }
  } finally {
    closeSync(fd);
  }

  const sealedKeys = encodeSealedMetadata({
    version: SEALED_VERSION, scheme: SEALED_SCHEME, authority: opts.authority.fingerprint, issuer: opts.authority.issuerKey, plaintextSha256, nodes: sealedNodes,
  });
  const metadata: GgufMetadata = new Map([...header.metadata, ...sealedKeys]);
  metadata.set("secneuron.signature", signSealedHeader(metadata, header, opts.authority.issuerSecretKey));

  // Which node and tag each sealed row has, by tensor name and row.
  const byTensor = new Map<string, Map<number, { node: number; tag: number }>>();
  nodeRowsList.forEach((rows, k) => rows.forEach((r, i) => {
    const name = header.tensors[r.tensorId]!.name;
    const m = byTensor.get(name) ?? new Map();
    m.set(r.row, { node: k, tag: i });
    byTensor.set(name, m);
  }));

  const tensorIds = new Map(header.tensors.map((t, i) => [t.name, i]));

  // Pass 2: write.
  try {
    await rewriteGguf(opts.model, opts.out, {
      metadata,
      onProgress: (d, t) => opts.onProgress?.("write", d, t),
      rowTransform(tensor, firstRow, n, bytes) {
        const sealed = byTensor.get(tensor.name);
        if (!sealed) return;
        const rb = bytes.length / n;
        const tensorId = tensorIds.get(tensor.name)!;
        const perNode = new Map<number, { spans: RowSpanTable; tagIdx: number[] }>();
        for (let r = firstRow; r < firstRow + n; r++) {
          const s = sealed.get(r);
          if (!s) continue;
          const e = perNode.get(s.node) ?? { spans: new RowSpanTable(), tagIdx: [] };
          e.spans.push((r - firstRow) * rb, rb, tensorId, r);
          e.tagIdx.push(s.tag);
          perNode.set(s.node, e);
        }
        for (const [k, { spans, tagIdx }] of perNode) {
          const tags = backend.encryptRows(bytes, spans, nodeKeys[k]!);
          const want = sealedNodes[k]!.tags;
          tagIdx.forEach((ti, j) => {
            for (let b = 0; b < ROW_TAG_BYTES; b++) {
              if (tags[j * ROW_TAG_BYTES + b] !== want[ti * ROW_TAG_BYTES + b]) {
                throw new SealError("SEAL_INPUT_CHANGED", `${opts.model} changed while it was being sealed (row ${spans.rowId(j)} of ${tensor.name})`);
              }
            }
          });
        }
      },
    });
  } finally {
    for (const k of nodeKeys) k.fill(0);
  }
  const out = readGgufHeader(opts.out);
  validateLlamaModel(out);
  const nodes = sealedNodes.map((n, k) => ({
    id: n.id, tasks: [...n.tasks], policies: [...n.policies], neurons: nodeNeuronCount(n), heads: nodeHeadCount(n), rows: nodeRowsList[k]!.length,
    bytes: nodeRowsList[k]!.reduce((s, r) => s + r.length, 0),
    perLayer: Object.fromEntries([...n.neurons].map(([l, idx]) => [String(l), idx.length])),
    headsPerLayer: Object.fromEntries([...n.heads].map(([l, idx]) => [String(l), idx.length])),
  }));
  return {
    out: opts.out, plaintextSha256, authority: opts.authority.fingerprint, nodes,
    sealedNeurons: nodes.reduce((s, n) => s + n.neurons, 0), sealedHeads: nodes.reduce((s, n) => s + n.heads, 0), sealedBytes: nodes.reduce((s, n) => s + n.bytes, 0),
    fileSize: out.fileSize, seconds: (performance.now() - t0) / 1000, backend: backend.name,
  };
}
