/** Shared fixtures for the manifest suites: one throwaway authority, cheap (test-only) KDF cost. */
import { ed25519 } from "@noble/curves/ed25519.js";
import { expect } from "vitest";
import { setup, type MasterKey, type PublicParams } from "../../plugin/core/abe/fame.js";
import { issueManifest, type IssuedManifest, type IssueManifestInput } from "../../plugin/core/manifest/manifest.js";
import { bytesToHex } from "../../plugin/core/manifest/token.js";
import { SecNeuronError } from "../../plugin/errors.js";

export interface TestAuthority {
  publicParams: PublicParams;
  masterKey: MasterKey;
  issuerSecretKey: Uint8Array;
  issuerKey: string;
}

/** The fixed "now" of the suites: 2025-06-01T12:00:00Z. */
export const NOW = Date.parse("2025-06-01T12:00:00Z");
export const DAY = 86_400_000;
/** Test-only scrypt cost (2^10): recorded in the manifest, accepted only with allowWeakKdf. */
export const TEST_LOG_N = 10;

let cached: TestAuthority | undefined;
export function testAuthority(): TestAuthority {
  if (!cached) cached = newAuthority();
  return cached;
}

export function newAuthority(): TestAuthority {
  const { publicParams, masterKey } = setup();
  const issuerSecretKey = ed25519.utils.randomSecretKey();
  return { publicParams, masterKey, issuerSecretKey, issuerKey: bytesToHex(ed25519.getPublicKey(issuerSecretKey)) };
}

export function issueTest(over: Partial<IssueManifestInput> = {}, authority = testAuthority()): IssuedManifest {
  return issueManifest(
    {
      publicParams: authority.publicParams,
      masterKey: authority.masterKey,
      issuerSecretKey: authority.issuerSecretKey,
      subject: "alice",
      attributes: ["task:math", "task:code"],
      models: ["llama3.2:1b", `sha256:${"ab".repeat(32)}`],
      notBefore: NOW - DAY,
      expires: NOW + 30 * DAY,
      kdfLogN: TEST_LOG_N,
      allowWeakKdf: true,
      ...over,
    },
    { now: NOW },
  );
}

/** Runs `fn`, expects a SecNeuronError with `code`, returns it. */
export function expectCode(fn: () => unknown, code: string): SecNeuronError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SecNeuronError);
    expect((e as SecNeuronError).code, (e as Error).message).toBe(code);
    return e as SecNeuronError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

export async function expectCodeAsync(p: Promise<unknown>, code: string): Promise<SecNeuronError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SecNeuronError);
    expect((e as SecNeuronError).code, (e as Error).message).toBe(code);
    return e as SecNeuronError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}
