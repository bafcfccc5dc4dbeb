/**
 * `unseal`: turn a sealed model plus a user's CP-ABE key into a variant, a GGUF on tmpfs in which
 * the rows of the nodes the key unlocks are decrypted (and authenticated) and every other sealed
 * row is zero. Fail closed: any error (signature, foreign authority, unwrap, a row whose tag does
 * not verify, a row that still looks encrypted after decryption) removes the partial variant and
 * throws; the sealed input is only read. A Variant stays live: grant decrypts more nodes into the
 * same file and revoke zeroes them, which a CPU llama.cpp that memory-maps the file sees at once.
 */
import { randomBytes } from "node:crypto";
import { copyFile } from "node:fs/promises";
import { chmodSync, closeSync, openSync, readSync, rmSync, statfsSync, renameSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { bytesToHex } from "@noble/hashes/utils.js";
import { CryptoError, SecNeuronError } from "../errors.js";
import { decodeCiphertext, decrypt as abeDecrypt, type UserKey } from "../core/abe/fame.js";
import { RowSpanTable, ROW_TAG_BYTES } from "../core/cipher/row-cipher.js";
import { validateLlamaModel, type LlamaHyperparams } from "../core/gguf/llama-check.js";
import type { GgufHeader } from "../core/gguf/types.js";
import { authorizedNodes } from "../core/policy/tree.js";
import { unwrapNodeKey } from "../core/seal/node-key-wrap.js";
import { nodeRows, type SealedRow } from "../core/seal/plan.js";
import { decodeSealedMetadata, sealedTree, verifySealedHeader, type SealedInfo } from "../core/seal/sealed-metadata.js";
import { rowCipherBackend } from "./cipher-backend.js";
import { readGgufHeader } from "./gguf-file.js";
import { isNeuronTensor, scanGguf, type ScanResult } from "./scan.js";
import { rowRange } from "../core/gguf/rows.js";

export class UnsealError extends SecNeuronError {}

export interface SealedModel {
  readonly path: string;
  readonly header: GgufHeader;
  readonly hyperparams: LlamaHyperparams;
  readonly info: SealedInfo;
  /** Rows of each node, in tag order. */
  readonly rows: readonly (readonly SealedRow[])[];
}

/** Parse, validate and verify the issuer's signature on a sealed model. */
export function openSealedModel(path: string): SealedModel {
  const header = readGgufHeader(path);
  const hyperparams = validateLlamaModel(header);
  const info = decodeSealedMetadata(header, hyperparams);
  if (!verifySealedHeader(header, info)) {
    throw new UnsealError("SEALED_BAD_SIGNATURE", `${path}: the sealed header's signature does not verify under issuer ${info.issuer} (the file was altered)`);
  }
  return { path, header, hyperparams, info, rows: info.nodes.map((n) => nodeRows(header, hyperparams, n)) };
}

/**
 * Decrypt the node keys `userKey` unlocks (only nodes serving `tasks`, when given: least
 * privilege). Returns node index -> 32-byte key. The caller zeroes the keys when done.
 */
export function unlockNodeKeys(model: SealedModel, userKey: UserKey, tasks?: readonly string[]): Map<number, Uint8Array> {
  const fp = bytesToHex(userKey.fingerprint);
  if (fp !== model.info.authority) {
    throw new UnsealError("UNSEAL_FOREIGN_AUTHORITY", `the key was issued by authority ${fp.slice(0, 16)}…, the model was sealed for ${model.info.authority.slice(0, 16)}…`);
  }
  if (tasks) {
    const known = new Set(model.info.nodes.flatMap((n) => n.tasks));
    for (const t of tasks) if (!known.has(t)) throw new UnsealError("UNSEAL_UNKNOWN_TASK", `task '${t}' is not sealed in this model (sealed: ${[...known].join(", ")})`);
  }
  const keys = new Map<number, Uint8Array>();
  try {
    for (const { node, policyIndex } of authorizedNodes(sealedTree(model.info), userKey.attributes, tasks)) {
      const k = model.info.nodes.indexOf(node as SealedInfo["nodes"][number]);
      const w = model.info.nodes[k]!.wrapped[policyIndex]!;
      const ct = decodeCiphertext(w.abe);
      if (ct.policy !== node.policies[policyIndex]) throw new UnsealError("UNSEAL_POLICY_MISMATCH", `node '${node.id}': the wrapped key's policy differs from the node's`);
      const kem = abeDecrypt(userKey, ct);
      try {
        keys.set(k, unwrapNodeKey(kem, w.key, node.id, policyIndex));
      } finally {
        kem.fill(0);
      }
    }
  } catch (e) {
    for (const k of keys.values()) k.fill(0);
    throw e;
  }
  return keys;
}

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

export function isMemoryFilesystem(dir: string): boolean {
  try {
    const t = statfsSync(dir).type;
    return t === TMPFS_MAGIC || t === RAMFS_MAGIC;
  } catch {
    return false;
  }
}

const BATCH_BYTES = 32 << 20;

/** Read rows into buf back to back (positional reads: row order is file order within a tensor). */
function readRows(fd: number, rows: readonly SealedRow[], buf: Buffer): RowSpanTable {
  const spans = new RowSpanTable(rows.length);
  let at = 0;
  for (const r of rows) {
    if (readSync(fd, buf, at, r.length, r.offset) !== r.length) throw new UnsealError("UNSEAL_SHORT_READ", `short read at byte ${r.offset}`);
    spans.push(at, r.length, r.tensorId, r.row);
    at += r.length;
  }
  return spans;
}

function* rowBatches(rows: readonly SealedRow[]): Generator<{ start: number; rows: readonly SealedRow[]; bytes: number }> {
  let start = 0;
  while (start < rows.length) {
    let end = start;
    let bytes = 0;
    while (end < rows.length && (end === start || bytes + rows[end]!.length <= BATCH_BYTES)) bytes += rows[end++]!.length;
    yield { start, rows: rows.slice(start, end), bytes };
    start = end;
  }
}

export interface VariantOptions {
  /** Allow a target that is not a memory filesystem. */
  readonly allowDisk?: boolean;
  /**
   * Detection scan after decryption: every FFN gate/up row ("ffn", default; plus every attn_q/k/v
   * row when the model seals attention head groups) or none.
   */
  readonly scan?: "ffn" | "none";
}

export interface DetectionReport {
  rowsScanned: number;
  /** Rows that looked encrypted and were zeroed. */
  zeroedRows: number;
  /** Sealed rows (in the row map) the detector recognised as ciphertext in the sealed file. */
  sealedRowsSeen: number;
  seconds: number;
}

/** A variant file whose node set can change while a host has it mapped. */
export class Variant {
  private readonly granted = new Set<number>();
  private disposed = false;
  private report: DetectionReport | undefined;
  private constructor(readonly model: SealedModel, readonly path: string, private readonly fd: number, private readonly sealedFd: number) {}

  /** Node indices whose rows are decrypted in the file now. */
  get nodes(): number[] {
    return [...this.granted].sort((a, b) => a - b);
  }
  get nodeIds(): string[] {
    return this.nodes.map((k) => this.model.info.nodes[k]!.id);
  }

  /**
   * Build a variant at `out` (tmpfs unless allowDisk): copy the sealed file, zero every sealed row,
   * then decrypt the given nodes. On any error nothing is left at `out`.
   */
  static async create(model: SealedModel, out: string, nodeKeys: ReadonlyMap<number, Uint8Array>, opts: VariantOptions = {}): Promise<Variant> {
    if (!opts.allowDisk && !isMemoryFilesystem(dirname(out))) {
      throw new UnsealError("UNSEAL_PERSISTENT_TARGET", `${dirname(out)} is not a memory filesystem (tmpfs): decrypted weights would reach persistent storage. Use /dev/shm, or pass allowDisk (--allow-disk) to opt in.`);
    }
    const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString("hex")}.tmp`);
    let fd: number | undefined;
    let sealedFd: number | undefined;
    try {
      // The kernel copies the file (libuv thread) while this thread runs the detection scan over
      // the sealed file: rows outside the signed row map are the same bytes in both files.
      const [, scan] = await Promise.all([
        copyFile(model.path, tmp),
        // Attention q/k/v rows are scanned too when the model seals head groups.
        (opts.scan ?? "ffn") === "ffn"
          ? scanGguf(model.path, model.info.nodes.some((n) => n.heads.size > 0) ? { tensors: isNeuronTensor } : {})
          : Promise.resolve(undefined),
      ]);
      chmodSync(tmp, 0o600); // it will hold decrypted weights
      fd = openSync(tmp, "r+");
      sealedFd = openSync(model.path, "r");
      const v = new Variant(model, tmp, fd, sealedFd);
      for (let k = 0; k < model.info.nodes.length; k++) if (!nodeKeys.has(k)) v.zeroNode(k);
      for (const [k, key] of nodeKeys) v.decryptNode(k, key);
      if (scan) v.zeroDetected(scan);
      renameSync(tmp, out);
      (v as { path: string }).path = out;
      return v;
    } catch (e) {
      if (fd !== undefined) closeSync(fd);
      if (sealedFd !== undefined) closeSync(sealedFd);
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  /** What the detection scan found when the variant was built. */
  get detection(): DetectionReport | undefined {
    return this.report;
  }

  /**
   * The detection backstop: zero every FFN gate/up row that still looks like ciphertext but is not
   * in the signed row map (e.g. rows encrypted by a tool whose map this model does not carry).
   * Rows in the map are decrypted and authenticated, or zeroed, already.
   */
  private zeroDetected(scan: ScanResult): void {
    const inMap = new Set<string>();
    for (const rows of this.model.rows) for (const row of rows) inMap.add(`${row.tensorId}:${row.row}`);
    const ids = new Map(this.model.header.tensors.map((t, i) => [t.name, i]));
    const report: DetectionReport = { rowsScanned: scan.rowsScanned, zeroedRows: 0, sealedRowsSeen: 0, seconds: scan.seconds };
    for (const hit of scan.encrypted) {
      const id = ids.get(hit.tensor)!;
      if (inMap.has(`${id}:${hit.row}`)) { report.sealedRowsSeen++; continue; }
      const range = rowRange(this.model.header, this.model.header.tensors[id]!, hit.row);
      writeSync(this.fd, Buffer.alloc(range.length), 0, range.length, range.offset);
      report.zeroedRows++;
    }
    this.report = report;
  }

  /** Decrypt more nodes into the live file. */
  async grant(nodeKeys: ReadonlyMap<number, Uint8Array>): Promise<void> {
    this.assertLive();
    for (const [k, key] of nodeKeys) if (!this.granted.has(k)) this.decryptNode(k, key);
  }

  /** Zero nodes in the live file. */
  async revoke(nodes: Iterable<number>): Promise<void> {
    this.assertLive();
    for (const k of nodes) if (this.granted.has(k)) this.zeroNode(k);
  }

  /** Close the file handles and hand the variant file over (it stays; no more grant/revoke). */
  async close(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    closeSync(this.fd);
    closeSync(this.sealedFd);
  }

  /** Close and delete the variant file. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    closeSync(this.fd);
    closeSync(this.sealedFd);
    rmSync(this.path, { force: true });
  }

  private assertLive(): void {
    if (this.disposed) throw new UnsealError("VARIANT_DISPOSED", `variant ${this.path} was disposed`);
  }

  private zeroNode(k: number): void {
    const rows = this.model.rows[k]!;
    const zeros = Buffer.alloc(rows.reduce((m, r) => Math.max(m, r.length), 0));
    for (const r of rows) writeSync(this.fd, zeros, 0, r.length, r.offset);
    this.granted.delete(k);
  }

  /** Read the node's ciphertext from the sealed file, decrypt and authenticate it, write it. */
  private decryptNode(k: number, key: Uint8Array): void {
    const node = this.model.info.nodes[k]!;
    const rows = this.model.rows[k]!;
    const backend = rowCipherBackend();
    for (const batch of rowBatches(rows)) {
      const buf = Buffer.allocUnsafe(batch.bytes);
      const spans = readRows(this.sealedFd, batch.rows, buf);
      const tags = node.tags.subarray(batch.start * ROW_TAG_BYTES, (batch.start + batch.rows.length) * ROW_TAG_BYTES);
      const res = backend.decryptRows(buf, spans, key, tags);
      if (!res.ok) {
        const bad = res.rowOk.findIndex((x) => x === 0);
        const r = batch.rows[bad]!;
        buf.fill(0);
        throw new CryptoError("E_ROW_AUTH", `node '${node.id}': ${res.failed} row(s) fail authentication, first: row ${r.row} of ${this.model.header.tensors[r.tensorId]!.name} (tampered data or wrong key)`, { node: node.id, failed: res.failed });
      }
      let at = 0;
      for (const r of batch.rows) {
        writeSync(this.fd, buf, at, r.length, r.offset);
        at += r.length;
      }
      buf.fill(0);
    }
    this.granted.add(k);
  }
}

export interface UnsealOptions {
  readonly sealed: string;
  readonly userKey: UserKey;
  readonly out: string;
  readonly tasks?: readonly string[];
  readonly allowDisk?: boolean;
  readonly scan?: VariantOptions["scan"];
}

/** Open, unlock and build a variant in one call; returns the live variant. */
export async function unsealModel(opts: UnsealOptions): Promise<Variant> {
  const model = openSealedModel(opts.sealed);
  const keys = unlockNodeKeys(model, opts.userKey, opts.tasks);
  try {
    return await Variant.create(model, opts.out, keys, { allowDisk: opts.allowDisk, scan: opts.scan });
  } finally {
    for (const k of keys.values()) k.fill(0);
  }
}
