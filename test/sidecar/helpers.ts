/**
 * A real sidecar for tests: an authority, the oracle sealed (letters, digits) and a plain model in
 * a models folder, manifests for a few subjects, the embedded llama.cpp host, all on tmpfs.
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { issueManifest } from "../../plugin/core/manifest/manifest.js";
import type { Authority } from "../../plugin/edges/authority.js";
import { Sidecar, type SidecarOptions } from "../../plugin/proxy/server.js";
import { oracleFixtures } from "../engine/helpers.js";
import { makeAuthority, sealOracle } from "../seal/helpers.js";

export interface Subject {
  readonly attrs: string[];
  readonly models?: string[];
  readonly notBefore?: number;
  readonly expires?: number;
}

export const SUBJECTS: Record<string, Subject> = {
  alice: { attrs: ["task:letters"], models: ["oracle"] },
  bob: { attrs: ["task:digits"] },
  root: { attrs: ["admin", "role:admin"] },
  carol: { attrs: ["task:letters", "task:digits"], models: ["plain"] },
  mallory: { attrs: ["task:code"] },
};

export interface Fixture {
  readonly dir: string;
  readonly authority: Authority;
  readonly manifestsDir: string;
  readonly tokens: Record<string, string>;
  sidecar: Sidecar;
  issue(subject: string, s: Subject, file?: string): string;
}

export async function startSidecar(dir: string, extra: Partial<SidecarOptions> = {}): Promise<Fixture> {
  const fx = await oracleFixtures();
  const authority = makeAuthority(join(dir, "authority"));
  const modelsDir = join(dir, "models");
  const manifestsDir = join(dir, "manifests");
  mkdirSync(modelsDir);
  mkdirSync(manifestsDir);
  await sealOracle(authority, fx.q8_0, join(modelsDir, "oracle.sn.gguf"));
  copyFileSync(fx.f16, join(modelsDir, "plain.gguf"));
  const tokens: Record<string, string> = {};
  const issue = (subject: string, s: Subject, file = `${subject}.manifest.json`): string => {
    const now = Date.now();
    const m = issueManifest({
      publicParams: authority.publicParams, masterKey: authority.masterKey, issuerSecretKey: authority.issuerSecretKey,
      subject, attributes: s.attrs, models: s.models, notBefore: s.notBefore ?? now - 60_000, expires: s.expires ?? now + 86_400_000,
      kdfLogN: 10, allowWeakKdf: true,
    }, { now });
    writeFileSync(join(manifestsDir, file), m.text);
    tokens[subject] = m.token;
    return m.token;
  };
  for (const [name, s] of Object.entries(SUBJECTS)) issue(name, s);
  const sidecar = await Sidecar.start({
    listen: "127.0.0.1:0", modelsDir, manifestsDir, authorityDir: join(dir, "authority"), variantDir: join(dir, "variants"),
    allowWeakKdf: true, auditLog: join(dir, "audit.jsonl"), log: () => {}, ...extra,
  });
  return { dir, authority, manifestsDir, tokens, sidecar, issue };
}
