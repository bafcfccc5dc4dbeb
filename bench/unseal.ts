/**
 * `npm run bench:unseal [-- --size 2G --type q8_0 --reps 5 --json]`: unseal time against `cp` of
 * the same sealed file to /dev/shm, measured in one run (medians). The model is a random-weight
 * llama of >= 2 GB with 10% of its FFN neurons sealed across 3 nodes (three tasks with disjoint
 * neuron sets), unsealed with an admin key (every node decrypted and authenticated).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { GgmlType } from "../plugin/core/gguf/constants.js";
import { keygen } from "../plugin/core/abe/fame.js";
import { PROFILE_FORMAT, PROFILE_VERSION, type Profile } from "../plugin/core/profile/profile.js";
import { initAuthority, loadAuthority } from "../plugin/edges/authority.js";
import { sealModel } from "../plugin/edges/seal.js";
import { openSealedModel, unlockNodeKeys, Variant } from "../plugin/edges/unseal.js";
import { dimsForSize, writeRandomLlamaModel } from "../examples/random-model/random-model.js";
import { readGgufHeader } from "../plugin/edges/gguf-file.js";
import { validateLlamaModel } from "../plugin/core/gguf/llama-check.js";
import { rowCipherBackend } from "../plugin/edges/cipher-backend.js";

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const TYPES: Record<string, GgmlType> = { q8_0: GgmlType.Q8_0, f16: GgmlType.F16, q4_0: GgmlType.Q4_0 };

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)$/i.exec(s);
  if (!m) throw new Error(`bad --size ${s}`);
  return Number(m[1]) * { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "2.05G" }, type: { type: "string", default: "q8_0" }, reps: { type: "string", default: "5" }, dir: { type: "string", default: "/dev/shm/secneuron-bench-unseal" }, json: { type: "boolean" } } });
  const type = TYPES[values.type!]!;
  const reps = Number(values.reps);
  const dir = values.dir!;
  mkdirSync(dir, { recursive: true });
  const log = (s: string) => { if (!values.json) console.error(s); };
  const dims = dimsForSize(parseSize(values.size!), type);
  const plain = join(dir, `random-${values.type}-${dims.nLayer}L.gguf`);
  if (!existsSync(plain)) {
    log(`generating ${plain}…`);
    await writeRandomLlamaModel(plain, { type, dims, seed: 42 });
  }
  const hp = validateLlamaModel(readGgufHeader(plain));
  // Three tasks, each owning a disjoint 1/30 of every layer's neurons: 10% sealed in 3 nodes.
  const tasks: Record<string, Profile["tasks"][string]> = {};
  ["alpha", "beta", "gamma"].forEach((name, t) => {
    tasks[name] = {
      tokens: 0,
      layers: Array.from({ length: hp.blockCount }, (_, layer) => ({
        layer,
        importance: Array.from({ length: hp.feedForwardLength }, (_, i) => (((i * 7919 + layer * 31) % 30) === t ? 1 : 0)),
      })),
    };
  });
  const profile: Profile = { format: PROFILE_FORMAT, version: PROFILE_VERSION, model: { architecture: "llama", blockCount: hp.blockCount, feedForwardLength: hp.feedForwardLength }, tasks };
  const authDir = join(dir, "authority");
  if (!existsSync(join(authDir, "authority.json"))) initAuthority(authDir, { now: Date.now() });
  const authority = loadAuthority(authDir);
  const sealed = join(dir, "sealed.sn.gguf");
  rmSync(sealed, { force: true });
  log("sealing…");
  const seal = await sealModel({ model: plain, out: sealed, profile, lock: { tasks: ["alpha", "beta", "gamma"], ratio: 1 / 30 }, authority });
  const size = statSync(sealed).size;
  const ffnNeurons = hp.blockCount * hp.feedForwardLength;
  log(`sealed ${seal.sealedNeurons}/${ffnNeurons} neurons (${((100 * seal.sealedNeurons) / ffnNeurons).toFixed(1)}%) in ${seal.nodes.length} nodes, ${(seal.sealedBytes / 2 ** 20).toFixed(0)} MiB, in ${seal.seconds.toFixed(1)} s`);

  const admin = keygen(authority.publicParams, authority.masterKey, ["admin"]);
  const copy = join(dir, "cp-copy.gguf");
  const out = join(dir, "variant.gguf");
  const cpT: number[] = [];
  const unsealT: number[] = [];
  const unsealNoScanT: number[] = [];
  let scanned = 0;
  for (let r = 0; r < reps; r++) {
    let t = performance.now();
    execFileSync("cp", [sealed, copy]);
    cpT.push((performance.now() - t) / 1000);
    rmSync(copy);
    for (const [scan, list] of [["ffn", unsealT], ["none", unsealNoScanT]] as const) {
      t = performance.now();
      const model = openSealedModel(sealed);
      const keys = unlockNodeKeys(model, admin);
      const v = await Variant.create(model, out, keys, { scan });
      list.push((performance.now() - t) / 1000);
      if (v.detection) scanned = v.detection.rowsScanned;
      for (const k of keys.values()) k.fill(0);
      await v.dispose();
    }
    log(`rep ${r + 1}: cp ${cpT.at(-1)!.toFixed(2)} s, unseal ${unsealT.at(-1)!.toFixed(2)} s, unseal without scan ${unsealNoScanT.at(-1)!.toFixed(2)} s`);
  }
  const res = {
    bench: "unseal", type: values.type, fileBytes: size, layers: hp.blockCount, sealedNeurons: seal.sealedNeurons, sealedFraction: Number((seal.sealedNeurons / ffnNeurons).toFixed(4)),
    nodes: seal.nodes.length, sealedBytes: seal.sealedBytes, backend: rowCipherBackend().name, reps,
    cpSecondsMedian: Number(median(cpT).toFixed(3)), unsealSecondsMedian: Number(median(unsealT).toFixed(3)), unsealNoScanSecondsMedian: Number(median(unsealNoScanT).toFixed(3)),
    ratio: Number((median(unsealT) / median(cpT)).toFixed(3)), ratioNoScan: Number((median(unsealNoScanT) / median(cpT)).toFixed(3)),
    cpGBs: Number((size / median(cpT) / 1e9).toFixed(2)), detectionRowsScanned: scanned, sealSeconds: Number(seal.seconds.toFixed(2)), target: 1.3,
  };
  if (!values.json) {
    console.log(`\n| step | median s | x cp |\n|---|---:|---:|`);
    console.log(`| cp to /dev/shm (${(size / 2 ** 30).toFixed(2)} GiB) | ${res.cpSecondsMedian} | 1.00 |`);
    console.log(`| unseal (admin: 3 nodes decrypted, detection scan of ${scanned} FFN rows) | ${res.unsealSecondsMedian} | ${res.ratio} |`);
    console.log(`| unseal without the detection scan | ${res.unsealNoScanSecondsMedian} | ${res.ratioNoScan} |`);
  }
  console.log(JSON.stringify(res));
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
