/**
 * A node's 256-bit AES key, wrapped under a CP-ABE encapsulated key (KEM-DEM): FAME encapsulates
 * a fresh key per policy, so the node key is sealed under each with AES-256-GCM, the node id and
 * policy index as associated data (a wrapped key cannot be moved to another node or policy).
 */
import { gcm } from "@noble/ciphers/aes.js";
import { CryptoError } from "../../errors.js";

const WRAP_NONCE = new Uint8Array(12); // each KEM key is fresh and wraps exactly one node key
const enc = new TextEncoder();

function aad(nodeId: string, policyIndex: number): Uint8Array {
  return enc.encode(`secneuron-node-key-v1\n${nodeId}\n${policyIndex}`);
}

export function wrapNodeKey(kemKey: Uint8Array, nodeKey: Uint8Array, nodeId: string, policyIndex: number): Uint8Array {
  if (kemKey.length !== 32 || nodeKey.length !== 32) throw new CryptoError("E_KEY_LENGTH", "node and KEM keys are 32 bytes");
  return gcm(kemKey, WRAP_NONCE, aad(nodeId, policyIndex)).encrypt(nodeKey);
}

export function unwrapNodeKey(kemKey: Uint8Array, wrapped: Uint8Array, nodeId: string, policyIndex: number): Uint8Array {
  try {
    const key = gcm(kemKey, WRAP_NONCE, aad(nodeId, policyIndex)).decrypt(wrapped);
    if (key.length !== 32) throw new Error("length");
    return key;
  } catch {
    throw new CryptoError("E_NODE_KEY_UNWRAP", `node '${nodeId}': the wrapped key does not open (tampered metadata or a foreign authority)`, { nodeId, policyIndex });
  }
}
