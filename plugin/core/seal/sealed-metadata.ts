/**
 * Sealed model metadata, version 1 (spec: docs/sealed-format.md). A sealed GGUF keeps the input's
 * metadata and tensors and appends `secneuron.*` keys: scheme, authority, the policy tree with
 * per-node wrapped keys, the row map and the per-row GCM tags, and an ed25519 signature by the
 * authority's issuer key over everything else in the header. Decoding is strict.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { GgufFormatError } from "../../errors.js";
import { GgufValueType } from "../gguf/constants.js";
import { kv, type GgufHeader, type GgufMetadata, type GgufValue } from "../gguf/types.js";
import { layoutGguf } from "../gguf/writer.js";
import { canonicalPolicy } from "../abe/policy.js";
import { ROW_TAG_BYTES } from "../cipher/row-cipher.js";
import type { PolicyTree, TreeNode } from "../policy/tree.js";
import { headGroupRowCount, type ModelShape } from "./plan.js";

export const SEALED_VERSION = 1;
export const SEALED_SCHEME = "secneuron-sealed-v1;row=aes-256-gcm-v1;kem=fame-bls12-381-v1;wrap=aes-256-gcm";
export const PREFIX = "secneuron.";

export interface SealedNode extends TreeNode {
  /** Per policy (same order): the encoded FAME ciphertext and the node key wrapped under its KEM key. */
  readonly wrapped: ReadonlyArray<{ readonly abe: Uint8Array; readonly key: Uint8Array }>;
  /**
   * 16-byte GCM tags, in the row order of plan.ts nodeRows: for each FFN neuron in map order
   * (layer asc, index asc) its gate row then up row; then for each head group (layer asc, group
   * asc) its attn_q rows, attn_k rows and attn_v rows, each ascending.
   */
  readonly tags: Uint8Array;
}

export interface SealedInfo {
  readonly version: number;
  readonly scheme: string;
  /** Hex SHA-256 of the CP-ABE public params (the authority's fingerprint). */
  readonly authority: string;
  /** Hex ed25519 public key of the issuer that signed the header. */
  readonly issuer: string;
  /** Hex SHA-256 of the plaintext input file. */
  readonly plaintextSha256: string;
  readonly nodes: readonly SealedNode[];
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString("base64");

function fail(key: string, message: string): never {
  throw new GgufFormatError("SEALED_BAD_METADATA", key, undefined, message);
}

export function isSealed(metadata: GgufMetadata): boolean {
  for (const k of metadata.keys()) if (k.startsWith(PREFIX)) return true;
  return false;
}

/** The sealed keys, in order, without the signature. */
export function encodeSealedMetadata(info: SealedInfo): Array<[string, GgufValue]> {
  const out: Array<[string, GgufValue]> = [
    ["secneuron.version", kv.u32(info.version)],
    ["secneuron.scheme", kv.str(info.scheme)],
    ["secneuron.authority", kv.str(info.authority)],
    ["secneuron.issuer", kv.str(info.issuer)],
    ["secneuron.plaintext_sha256", kv.str(info.plaintextSha256)],
    ["secneuron.node_count", kv.u32(info.nodes.length)],
  ];
  info.nodes.forEach((n, k) => {
    const p = `secneuron.node.${k}.`;
    const map: number[] = [];
    for (const [layer, idx] of n.neurons) map.push(layer, idx.length, ...idx);
    const heads: number[] = [];
    for (const [layer, idx] of n.heads) if (idx.length > 0) heads.push(layer, idx.length, ...idx);
    out.push(
      [`${p}id`, kv.str(n.id)],
      [`${p}tasks`, kv.strs(n.tasks)],
      [`${p}policies`, kv.strs(n.policies)],
      [`${p}wrapped_abe`, kv.strs(n.wrapped.map((w) => b64(w.abe)))],
      [`${p}wrapped_key`, kv.strs(n.wrapped.map((w) => b64(w.key)))],
      [`${p}neurons`, { type: GgufValueType.ARRAY, itemType: GgufValueType.UINT32, value: map }],
    );
    // Optional (absent when the node seals no head group), so FFN-only files are unchanged.
    if (heads.length > 0) out.push([`${p}heads`, { type: GgufValueType.ARRAY, itemType: GgufValueType.UINT32, value: heads }]);
    out.push([`${p}tags`, kv.str(b64(n.tags))]);
  });
  return out;
}

/** Bytes the issuer signs: the header (metadata minus the signature, tensor infos) as our writer lays it out. */
export function signingDigest(metadata: GgufMetadata, header: Pick<GgufHeader, "tensors">): Uint8Array {
  const md: GgufMetadata = new Map([...metadata].filter(([k]) => k !== "secneuron.signature"));
  const { headerBytes } = layoutGguf(md, header.tensors.map((t) => ({ name: t.name, ne: t.ne, type: t.type })));
  return sha256(new Uint8Array([...new TextEncoder().encode("secneuron-sealed-header-v1\n"), ...sha256(headerBytes)]));
}

export function signSealedHeader(metadata: GgufMetadata, header: Pick<GgufHeader, "tensors">, issuerSecretKey: Uint8Array): GgufValue {
  return kv.str(bytesToHex(ed25519.sign(signingDigest(metadata, header), issuerSecretKey)));
}

function str(md: GgufMetadata, key: string, pattern?: RegExp): string {
  const v = md.get(key);
  if (!v) fail(key, "missing");
  if (v.type !== GgufValueType.STRING) fail(key, "must be a string");
  if (pattern && !pattern.test(v.value)) fail(key, `'${v.value.slice(0, 80)}' has the wrong form`);
  return v.value;
}
function strs(md: GgufMetadata, key: string): string[] {
  const v = md.get(key);
  if (!v) fail(key, "missing");
  if (v.type !== GgufValueType.ARRAY || v.itemType !== GgufValueType.STRING) fail(key, "must be an array of strings");
  return [...(v.value as readonly string[])];
}
function u32(md: GgufMetadata, key: string): number {
  const v = md.get(key);
  if (!v) fail(key, "missing");
  if (v.type !== GgufValueType.UINT32) fail(key, "must be a u32");
  return v.value;
}
function base64(s: string, key: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) fail(key, "is not canonical base64");
  const b = Buffer.from(s, "base64");
  if (b.toString("base64") !== s) fail(key, "is not canonical base64");
  return new Uint8Array(b);
}

const HEX64 = /^[0-9a-f]{64}$/;
const MAX_NODES = 4096;

function count_(m: ReadonlyMap<number, readonly number[]>): number {
  let n = 0;
  for (const idx of m.values()) n += idx.length;
  return n;
}

/**
 * Decode a row map (`layer, count, index...`, layers ascending and unique, indices ascending and
 * unique, each below `width`), recording owners in `owner` (a unit in two nodes is an error).
 * Undefined when the key is absent and not required.
 */
function rowMap(md: GgufMetadata, key: string, unit: string, blockCount: number, width: number, owner: Set<string>, required: boolean): Map<number, number[]> | undefined {
  const nv = md.get(key);
  if (!nv && !required) return undefined;
  if (!nv || nv.type !== GgufValueType.ARRAY || nv.itemType !== GgufValueType.UINT32) fail(key, "must be an array of u32");
  const flat = nv.value as readonly number[];
  const out = new Map<number, number[]>();
  for (let i = 0; i < flat.length; ) {
    const layer = flat[i]!;
    const n = flat[i + 1];
    if (n === undefined || i + 2 + n > flat.length) fail(key, `truncated entry at ${i}`);
    if (layer >= blockCount) fail(key, `layer ${layer} does not exist (${blockCount} blocks)`);
    if (out.has(layer) || (out.size > 0 && layer < Math.max(...out.keys()))) fail(key, `layers must be ascending and unique (layer ${layer})`);
    if (!required && n === 0) fail(key, `layer ${layer} lists no ${unit}s`);
    const idx = flat.slice(i + 2, i + 2 + n) as number[];
    for (let j = 0; j < idx.length; j++) {
      if (idx[j]! >= width) fail(key, `${unit} ${idx[j]} in layer ${layer} is past the width ${width}`);
      if (j > 0 && idx[j]! <= idx[j - 1]!) fail(key, `${unit}s of layer ${layer} must be ascending and unique`);
      const k = `${unit}:${layer}:${idx[j]}`;
      if (owner.has(k)) fail(key, `${unit} ${idx[j]} of layer ${layer} belongs to two nodes`);
      owner.add(k);
    }
    out.set(layer, idx);
    i += 2 + n;
  }
  return out;
}

/**
 * Decode and check the sealed metadata against the header it came from and the model's validated
 * hyperparameters: versions, shapes of every field, neuron indices inside the FFN, head groups
 * below n_head_kv, no neuron or head group in two nodes, tag counts. Does not verify the
 * signature (see verifySealedHeader).
 */
export function decodeSealedMetadata(header: GgufHeader, hp: ModelShape): SealedInfo {
  const { feedForwardLength, blockCount } = hp;
  const headGroups = hp.headCountKv;
  const rowsPerHeadGroup = headGroupRowCount(hp);
  const md = header.metadata;
  const version = u32(md, "secneuron.version");
  if (version !== SEALED_VERSION) fail("secneuron.version", `unsupported sealed format version ${version} (supported: ${SEALED_VERSION})`);
  const scheme = str(md, "secneuron.scheme");
  if (scheme !== SEALED_SCHEME) fail("secneuron.scheme", `unsupported scheme '${scheme}'`);
  const authority = str(md, "secneuron.authority", HEX64);
  const issuer = str(md, "secneuron.issuer", HEX64);
  const plaintextSha256 = str(md, "secneuron.plaintext_sha256", HEX64);
  str(md, "secneuron.signature", /^[0-9a-f]{128}$/);
  const count = u32(md, "secneuron.node_count");
  if (count < 1 || count > MAX_NODES) fail("secneuron.node_count", `${count} is outside 1..${MAX_NODES}`);
  const known = new Set(["secneuron.version", "secneuron.scheme", "secneuron.authority", "secneuron.issuer", "secneuron.plaintext_sha256", "secneuron.node_count", "secneuron.signature"]);
  const owner = new Set<string>();
  const nodes: SealedNode[] = [];
  for (let k = 0; k < count; k++) {
    const p = `secneuron.node.${k}.`;
    for (const f of ["id", "tasks", "policies", "wrapped_abe", "wrapped_key", "neurons", "heads", "tags"]) known.add(p + f);
    const id = str(md, `${p}id`);
    const tasks = strs(md, `${p}tasks`);
    if (tasks.length === 0 || tasks.join("+") !== id || [...tasks].sort().join() !== tasks.join()) fail(`${p}tasks`, `must be the sorted tasks of node '${id}'`);
    const policies = strs(md, `${p}policies`);
    if (policies.length !== tasks.length) fail(`${p}policies`, `${policies.length} policies for ${tasks.length} tasks`);
    policies.forEach((pol, i) => {
      let canon: string;
      try { canon = canonicalPolicy(pol); } catch (e) { fail(`${p}policies[${i}]`, (e as Error).message); }
      if (canon !== pol) fail(`${p}policies[${i}]`, "is not in canonical form");
    });
    const abe = strs(md, `${p}wrapped_abe`);
    const keys = strs(md, `${p}wrapped_key`);
    if (abe.length !== policies.length || keys.length !== policies.length) fail(`${p}wrapped_abe`, "one wrapped key per policy expected");
    const wrapped = abe.map((a, i) => ({ abe: base64(a, `${p}wrapped_abe[${i}]`), key: base64(keys[i]!, `${p}wrapped_key[${i}]`) }));
    const neurons = rowMap(md, `${p}neurons`, "neuron", blockCount, feedForwardLength, owner, true)!;
    const heads = rowMap(md, `${p}heads`, "head group", blockCount, headGroups, owner, false) ?? new Map<number, number[]>();
    const total = count_(neurons);
    const totalHeads = count_(heads);
    if (total + totalHeads === 0) fail(`${p}neurons`, "a node must seal at least one neuron or head group");
    const tags = base64(str(md, `${p}tags`), `${p}tags`);
    const want = (total * 2 + totalHeads * rowsPerHeadGroup) * ROW_TAG_BYTES;
    if (tags.length !== want) fail(`${p}tags`, `${tags.length} bytes, expected ${want} (two rows per neuron, ${rowsPerHeadGroup} per head group)`);
    nodes.push({ id, tasks, policies, wrapped, neurons, heads, tags });
  }
  for (const k of md.keys()) if (k.startsWith(PREFIX) && !known.has(k)) fail(k, "unknown sealed metadata key");
  return { version, scheme, authority, issuer, plaintextSha256, nodes };
}

/** Verify the issuer's signature over the header. */
export function verifySealedHeader(header: GgufHeader, info: SealedInfo): boolean {
  const sig = header.metadata.get("secneuron.signature");
  if (!sig || sig.type !== GgufValueType.STRING) return false;
  try {
    return ed25519.verify(hexToBytes(sig.value), signingDigest(header.metadata, header), hexToBytes(info.issuer));
  } catch {
    return false;
  }
}

/** The policy tree part of sealed info. */
export function sealedTree(info: SealedInfo): PolicyTree {
  return { nodes: info.nodes };
}
