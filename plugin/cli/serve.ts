/** `secneuron serve`: the sidecar. Flags override the YAML config file, which overrides defaults. */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { UsageError } from "../errors.js";
import { Sidecar, type SidecarOptions } from "../proxy/server.js";
import type { Command } from "./args.js";

const HELP = `Usage: secneuron serve [--listen 127.0.0.1:11435] [--models ./models] [--manifests ./manifests]
                       [--authority ./authority] [--host embedded|ollama|llama-server] [--upstream URL]
                       [--ollama-models DIR] [--llama-server BIN] [--config secneuron.yaml]
                       [--variant-dir /dev/shm/...] [--variant-budget 8G] [--allow-disk]
                       [--audit-log audit.jsonl] [--log-prompts] [--threads 1] [--ctx 2048] [--poll]

Runs the sidecar: an Ollama- and OpenAI-compatible API in front of the model host. Each caller
authenticates with the API token of a key manifest (Authorization: Bearer <token> or X-Api-Key);
requests are served from the variant of the model that the manifest's attributes unlock (only
the tasks named in X-SecNeuron-Task, when given). Manifests are watched: adding, changing or
removing a file takes effect without a restart. SIGINT/SIGTERM drain requests, wipe variants
and stop the host.

Options (and the same keys in the YAML config file):
  --listen <host:port>      where to listen (default 127.0.0.1:11435)
  --models <dir>            models folder: *.sn.gguf (sealed) and *.gguf (plain) (default ./models)
  --manifests <dir>         watched key manifests folder (default ./manifests)
  --authority <dir>         authority folder; only its public part is read (default ./authority)
  --host <kind>             model host: embedded (llama.cpp in a supervised child; default) or
                            ollama (variants registered in an Ollama store, served by Ollama)
  --upstream <url>          ollama host: the Ollama server (default http://127.0.0.1:11434)
  --ollama-models <dir>     ollama host: the store the server reads (its OLLAMA_MODELS)
  --llama-server <path>     llama-server host (one llama-server per variant, OpenAI routes only):
                            the binary (default: built by npm run build:llama-server)
  --variant-dir <dir>       where variants are written (default /dev/shm/secneuron-<pid>)
  --variant-budget <size>   memory for cached variants, e.g. 8G (default 8G)
  --allow-disk              allow variants on a persistent filesystem
  --audit-log <file>        JSONL audit log of every decision (default: none)
  --log-prompts             include prompt text in the audit log (off by default)
  --threads <n>             llama.cpp threads (default 1)
  --ctx <n>                 context size per model (default 2048)
  --poll                    poll the manifests folder (bind mounts, network filesystems)
  --config <file>           YAML file with any of the keys above (without --)`;

const KEYS = ["listen", "models", "manifests", "authority", "host", "upstream", "ollama-models", "llama-server", "variant-dir", "variant-budget", "allow-disk", "audit-log", "log-prompts", "threads", "ctx", "poll"] as const;
type Key = (typeof KEYS)[number];

function parseSize(v: string, key: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
  if (!m) throw new UsageError("CLI_USAGE", `serve: ${key} must be a size like 512M or 8G, got '${v}'`);
  return Math.round(Number(m[1]) * { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"]);
}

function positiveInt(v: unknown, key: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError("CLI_USAGE", `serve: ${key} must be a positive integer, got '${String(v)}'`);
  return n;
}

export function loadConfigFile(path: string): Partial<Record<Key, unknown>> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError("CLI_USAGE", `serve: cannot read --config ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new UsageError("CLI_USAGE", `serve: ${path} is not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new UsageError("CLI_USAGE", `serve: ${path} must be a YAML mapping of option names to values`);
  for (const k of Object.keys(doc)) {
    if (!(KEYS as readonly string[]).includes(k)) throw new UsageError("CLI_USAGE", `serve: ${path}: unknown key '${k}' (known: ${KEYS.join(", ")})`);
  }
  return doc as Partial<Record<Key, unknown>>;
}

/** Merge flags over config over defaults into sidecar options. */
export function serveOptions(values: Record<string, unknown>): SidecarOptions {
  const file = typeof values.config === "string" ? loadConfigFile(values.config) : {};
  const get = (k: Key): unknown => values[k] ?? file[k];
  const str = (k: Key, dflt?: string): string | undefined => {
    const v = get(k);
    if (v === undefined) return dflt;
    if (typeof v !== "string" || !v) throw new UsageError("CLI_USAGE", `serve: ${k} must be a non-empty string`);
    return v;
  };
  const bool = (k: Key): boolean => {
    const v = get(k);
    if (v === undefined) return false;
    if (typeof v !== "boolean") throw new UsageError("CLI_USAGE", `serve: ${k} must be true or false`);
    return v;
  };
  const host = str("host", "embedded");
  if (host !== "embedded" && host !== "ollama" && host !== "llama-server") throw new UsageError("CLI_USAGE", `serve: --host must be embedded, ollama or llama-server, got '${host}'`);
  const budget = get("variant-budget");
  return {
    listen: str("listen", "127.0.0.1:11435"),
    modelsDir: str("models", "./models")!,
    manifestsDir: str("manifests", "./manifests")!,
    authorityDir: str("authority", "./authority")!,
    host,
    upstream: str("upstream"),
    ollamaModels: str("ollama-models"),
    llamaServer: str("llama-server"),
    variantDir: str("variant-dir"),
    variantBudgetBytes: budget === undefined ? undefined : parseSize(String(budget), "variant-budget"),
    allowDisk: bool("allow-disk"),
    auditLog: str("audit-log"),
    logPrompts: bool("log-prompts"),
    threads: get("threads") === undefined ? 1 : positiveInt(get("threads"), "threads"),
    contextSize: get("ctx") === undefined ? undefined : positiveInt(get("ctx"), "ctx"),
    usePolling: bool("poll"),
  };
}

export const serveCommand: Command = {
  name: "serve",
  summary: "run the sidecar: per-key model access in front of llama.cpp",
  help: HELP,
  options: {
    listen: { type: "string" }, models: { type: "string" }, manifests: { type: "string" }, authority: { type: "string" }, host: { type: "string" },
    upstream: { type: "string" }, "ollama-models": { type: "string" }, "llama-server": { type: "string" },
    config: { type: "string" }, "variant-dir": { type: "string" }, "variant-budget": { type: "string" }, "allow-disk": { type: "boolean" },
    "audit-log": { type: "string" }, "log-prompts": { type: "boolean" }, threads: { type: "string" }, ctx: { type: "string" }, poll: { type: "boolean" },
  },
  async run(values, positionals, io) {
    if (positionals.length) throw new UsageError("CLI_USAGE", `serve: unexpected argument '${positionals[0]}'`);
    const opts = serveOptions(values);
    const sidecar = await Sidecar.start(opts);
    if (values.json) io.out(JSON.stringify({ url: sidecar.url, models: sidecar.registry().list().map((m) => ({ name: m.name, sealed: m.sealed })) }));
    else io.err(`secneuron sidecar on ${sidecar.url} (host ${sidecar.host.kind}); Ctrl-C to stop`);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        io.err(`${sig}: draining and wiping variants…`);
        void sidecar.close().then(resolve, resolve);
      };
      process.once("SIGINT", () => stop("SIGINT"));
      process.once("SIGTERM", () => stop("SIGTERM"));
    });
    return 0;
  },
};
