/** Sealing fixtures shared by the seal/unseal tests: one authority, the oracle sealed in every type. */
import { join } from "node:path";
import { keygen, type UserKey } from "../../plugin/core/abe/fame.js";
import { initAuthority, loadAuthority, type Authority } from "../../plugin/edges/authority.js";
import { sealModel, type SealSummary } from "../../plugin/edges/seal.js";
import { oracleProfile } from "../../examples/fixtures/oracle-profile.js";
import type { OracleTypeLabel } from "../../examples/fixtures/build-fixtures.js";

export function makeAuthority(dir: string): Authority {
  initAuthority(dir, { now: Date.now() });
  return loadAuthority(dir);
}

export async function sealOracle(authority: Authority, input: string, out: string): Promise<SealSummary> {
  return sealModel({ model: input, out, profile: oracleProfile(), lock: { tasks: ["letters", "digits"] }, authority });
}

export function userKey(authority: Authority, attrs: string[]): UserKey {
  return keygen(authority.publicParams, authority.masterKey, attrs);
}

export const KEY_SETS: Record<string, { attrs: string[]; letters: boolean; digits: boolean }> = {
  letters: { attrs: ["task:letters"], letters: true, digits: false },
  digits: { attrs: ["task:digits"], letters: false, digits: true },
  admin: { attrs: ["admin"], letters: true, digits: true },
  other: { attrs: ["task:code", "tier:pro"], letters: false, digits: false },
};

export function sealedPath(dir: string, label: OracleTypeLabel): string {
  return join(dir, `oracle-${label}.sn.gguf`);
}
