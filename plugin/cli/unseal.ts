/** `secneuron unseal`: build a variant of a sealed model with the rows a manifest unlocks. */
import { basename } from "node:path";
import { UsageError } from "../errors.js";
import { readManifestFile } from "../edges/manifests/manifest-file.js";
import { openSealedModel, unlockNodeKeys, UnsealError, Variant } from "../edges/unseal.js";
import { requiredOption, tokenOption, type Command } from "./args.js";
import { listOption } from "./issue.js";

const HELP = `Usage: secneuron unseal --model <m.sn.gguf> --manifest <m.manifest.json> (--token <T> | --token-file <p>)
                        --out <variant.gguf> [--tasks <t,...>] [--allow-disk] [--json]

Verifies the sealed model's signature and the manifest (signature, issuer = the model's
authority, validity window, token), unwraps the user's CP-ABE key with the token, decrypts the
keys of the nodes the key's attributes unlock (only nodes serving --tasks when given: least
privilege), and writes a variant: the sealed model with those rows decrypted and authenticated
and every other sealed row zeroed. The variant must be on a memory filesystem (/dev/shm) unless
--allow-disk. On any failure no variant file is left behind.

Options:
  --model <file>        sealed model (secneuron seal)
  --manifest <file>     key manifest (secneuron issue)
  --token <T>           the manifest's API token (visible in the process list: prefer --token-file)
  --token-file <p>      read the token from a file ('-' for stdin)
  --out <file>          variant to write
  --tasks <list>        only unlock what these tasks need
  --allow-disk          allow writing decrypted weights to persistent storage
  --json                print a JSON summary`;

export const unsealCommand: Command = {
  name: "unseal",
  summary: "decrypt what a manifest unlocks into a tmpfs variant",
  help: HELP,
  options: {
    model: { type: "string" }, manifest: { type: "string" }, token: { type: "string" }, "token-file": { type: "string" },
    out: { type: "string" }, tasks: { type: "string", multiple: true }, "allow-disk": { type: "boolean" },
  },
  async run(values, positionals, io) {
    const need = (k: string): string => requiredOption(values, k, "unseal");
    if (positionals.length) throw new UsageError("CLI_USAGE", `unseal: unexpected argument '${positionals[0]}'`);
    const t0 = performance.now();
    const modelPath = need("model");
    const out = need("out");
    const token = tokenOption(values, "unseal");
    if (!token) throw new UsageError("CLI_USAGE", "unseal: --token or --token-file is required");
    const model = openSealedModel(modelPath);
    const { manifest, userKey } = await readManifestFile(need("manifest"), {
      now: Date.now(), token, expectedIssuer: model.info.issuer, expectedFingerprint: model.info.authority,
    });
    if (manifest.models) {
      const name = basename(modelPath).replace(/\.sn\.gguf$|\.gguf$/i, "");
      const ok = manifest.models.some((m) => m === name || m === `${name}:latest` || m === `sha256:${model.info.plaintextSha256}`);
      if (!ok) throw new UnsealError("UNSEAL_MODEL_OUT_OF_SCOPE", `manifest ${manifest.id} does not cover model '${name}' (scope: ${manifest.models.join(", ")})`);
    }
    const tasks = values.tasks ? listOption(values.tasks) : undefined;
    const keys = unlockNodeKeys(model, userKey!, tasks);
    let variant: Variant;
    try {
      variant = await Variant.create(model, out, keys, { allowDisk: Boolean(values["allow-disk"]) });
    } finally {
      for (const k of keys.values()) k.fill(0);
    }
    const nodes = variant.nodeIds;
    const zeroed = model.info.nodes.filter((n) => !nodes.includes(n.id)).map((n) => n.id);
    await variant.close(); // the file stays: this command hands it over
    const summary = { out, subject: manifest.subject, decryptedNodes: nodes, zeroedNodes: zeroed, detection: variant.detection, seconds: Number(((performance.now() - t0) / 1000).toFixed(3)) };
    if (values.json) io.out(JSON.stringify(summary));
    else io.out(`wrote ${out} for ${manifest.subject}: decrypted ${nodes.length ? nodes.join(", ") : "(nothing)"}; zeroed ${zeroed.length ? zeroed.join(", ") : "(nothing)"} (${summary.seconds} s)`);
    if (!values.json && variant.detection) {
      const d = variant.detection;
      io.out(`detection scan: ${d.rowsScanned} FFN rows, ${d.zeroedRows} still looked encrypted and were zeroed; ${d.sealedRowsSeen} of the ${model.rows.reduce((a, r) => a + r.length, 0)} sealed rows recognised as ciphertext`);
    }
    return 0;
  },
};
