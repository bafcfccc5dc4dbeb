/**
 * `npm start`: the main job on the embedded default. Builds once (in .cache/demo) a sealed demo
 * model from the oracle fixture (letters and digits locked under separate policies), an authority
 * and three key manifests, starts the sidecar, and prints the tokens and copy-paste commands that
 * show one key getting letters but not digits.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { issueManifest } from "../../plugin/core/manifest/manifest.js";
import { initAuthority, loadAuthority } from "../../plugin/edges/authority.js";
import { sealModel } from "../../plugin/edges/seal.js";
import { Sidecar } from "../../plugin/proxy/server.js";
import { ensureOracleFixtures } from "../fixtures/build-fixtures.js";
import { oracleProfile } from "../fixtures/oracle-profile.js";

const DIR = resolve(process.env.SECNEURON_DEMO_DIR ?? ".cache/demo");
const LISTEN = process.env.SECNEURON_LISTEN ?? "127.0.0.1:11435";
const SUBJECTS = {
  alice: { attributes: ["task:letters"], note: "letters only" },
  bob: { attributes: ["task:digits"], note: "digits only" },
  admin: { attributes: ["admin", "role:admin"], note: "everything" },
} as const;

async function build(): Promise<Record<string, string>> {
  const tokensFile = join(DIR, "tokens.json");
  if (existsSync(tokensFile)) return JSON.parse(readFileSync(tokensFile, "utf8")) as Record<string, string>;
  console.error(`building the demo in ${DIR} (once)…`);
  for (const d of ["models", "manifests"]) mkdirSync(join(DIR, d), { recursive: true });
  const fixtures = await ensureOracleFixtures(join(DIR, "fixtures"));
  initAuthority(join(DIR, "authority"), { now: Date.now(), force: true });
  const authority = loadAuthority(join(DIR, "authority"));
  await sealModel({ model: fixtures.q8_0, out: join(DIR, "models", "oracle.sn.gguf"), profile: oracleProfile(), lock: { tasks: ["letters", "digits"] }, authority });
  copyFileSync(fixtures.f16, join(DIR, "models", "oracle-plain.gguf"));
  const tokens: Record<string, string> = {};
  for (const [subject, s] of Object.entries(SUBJECTS)) {
    const m = issueManifest({ publicParams: authority.publicParams, masterKey: authority.masterKey, issuerSecretKey: authority.issuerSecretKey, subject, attributes: [...s.attributes], models: subject === "admin" ? undefined : ["oracle"], expires: Date.now() + 365 * 86_400_000 }, { now: Date.now() });
    writeFileSync(join(DIR, "manifests", `${subject}.manifest.json`), m.text, { mode: 0o600 });
    tokens[subject] = m.token;
  }
  // The demo keeps its tokens so that restarts can print them again; real tokens are shown once.
  writeFileSync(tokensFile, JSON.stringify(tokens, null, 2), { mode: 0o600 });
  return tokens;
}

async function main(): Promise<void> {
  const tokens = await build();
  const sidecar = await Sidecar.start({
    listen: LISTEN, modelsDir: join(DIR, "models"), manifestsDir: join(DIR, "manifests"), authorityDir: join(DIR, "authority"),
    auditLog: join(DIR, "audit.jsonl"), log: (l) => { if (l.level !== "info" || l.msg === "manifest revoked") console.error(JSON.stringify(l)); },
  });
  const u = sidecar.url;
  console.log(`
secneuron sidecar: ${u}   (models: oracle = sealed, oracle-plain = unsealed; audit log ${join(DIR, "audit.jsonl")})

Tokens:
${Object.entries(SUBJECTS).map(([s, x]) => `  ${s.padEnd(6)} (${x.note.padEnd(12)}) ${tokens[s]}`).join("\n")}

The oracle continues letters (abc -> defg...) and digits (123 -> 4567...). Alice's key unlocks
only the letters neurons:

  curl -s ${u}/api/generate -H "Authorization: Bearer ${tokens.alice}" \\
    -d '{"model":"oracle","prompt":"abc","stream":false,"options":{"temperature":0,"num_predict":20}}'
  curl -s ${u}/api/generate -H "Authorization: Bearer ${tokens.alice}" \\
    -d '{"model":"oracle","prompt":"123","stream":false,"options":{"temperature":0,"num_predict":20}}'
  curl -s ${u}/v1/chat/completions -H "Authorization: Bearer ${tokens.bob}" -H 'content-type: application/json' \\
    -d '{"model":"oracle","messages":[{"role":"user","content":"123"}],"temperature":0,"max_tokens":20}'
  curl -s ${u}/api/tags -H "Authorization: Bearer ${tokens.alice}"

With the ollama library (node, from this folder):

  node --input-type=module -e 'import { Ollama } from "ollama";
    const o = new Ollama({ host: "${u}", headers: { Authorization: "Bearer ${tokens.alice}" } });
    for (const p of ["abc", "123"]) console.log(p, "->", (await o.generate({ model: "oracle", prompt: p, options: { temperature: 0, num_predict: 20 } })).response);'

Remove ${join(DIR, "manifests", "alice.manifest.json")} and Alice's token stops working at once.
Ctrl-C stops the sidecar and wipes the variants.`);
  const stop = () => void sidecar.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exitCode = 1;
});
