/**
 * The on-disk layout of an Ollama model store (the folder `OLLAMA_MODELS` names), as far as the
 * "ollama" host needs it: model names, manifest and blob paths, the two JSON documents, and a
 * streaming SHA-256 of a file.
 *
 *   <store>/manifests/registry.ollama.ai/library/<model>/<tag>   docker v2 manifest JSON
 *   <store>/blobs/sha256-<hex>                                    content-addressed blobs
 *
 * Ollama hashes blobs when it pulls or creates them, never when it loads them.
 */
import { createHash } from "node:crypto";
import { createReadStream, statSync, type Stats } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { EngineError } from "../../errors.js";

export const OLLAMA_REGISTRY_HOST = "registry.ollama.ai";
export const OLLAMA_NAMESPACE = "library";
export const MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json";
export const CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json";
export const MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model";
/** Ollama's limit on the model and the tag part of a name (types/model/name.go isValidLen). */
export const OLLAMA_PART_MAX = 80;
/** Default prefix of every model name this host registers. */
export const DEFAULT_NAME_PREFIX = "secneuron-";

/** A model or tag part: Ollama's charset (alphanumerics, `_`, `-`, `.`; first alphanumeric or `_`), lowercase only. */
const PART = /^[a-z0-9_][a-z0-9_.-]*$/;

/** The store Ollama itself uses by default: `$OLLAMA_MODELS`, else `~/.ollama/models`. */
export function defaultOllamaStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.OLLAMA_MODELS;
  return fromEnv && fromEnv.trim() !== "" ? fromEnv : join(homedir(), ".ollama", "models");
}

export interface OllamaName {
  /** The model part, prefixed (`secneuron-<model>`). */
  readonly model: string;
  readonly tag: string;
  /** `<model>:<tag>`: what requests to Ollama name. */
  readonly full: string;
}

/** Check a name prefix: it must itself start a valid model part. */
export function checkNamePrefix(prefix: string): void {
  if (typeof prefix !== "string" || prefix.length === 0 || prefix.length >= OLLAMA_PART_MAX || !PART.test(prefix)) {
    throw new EngineError("ENGINE_BAD_OPTION", `namePrefix ${JSON.stringify(prefix)} must be 1..79 characters of [a-z0-9_.-], starting with [a-z0-9_]`);
  }
}

/**
 * The Ollama name a variant is registered under: `<prefix><model>:<tag>` for a variant name
 * `<model>[:<tag>]` (tag "latest" when absent). Only lowercase names are accepted (some Ollama
 * versions lowercase manifest paths, so `A` and `a` could collide); no `/` (no host or
 * namespace: everything lives under registry.ollama.ai/library). Throws HOST_BAD_MODEL_NAME.
 */
export function ollamaModelName(name: string, prefix: string = DEFAULT_NAME_PREFIX): OllamaName {
  const bad = (why: string): EngineError =>
    new EngineError("HOST_BAD_MODEL_NAME", `model name ${JSON.stringify(name)} cannot be registered with Ollama: ${why}`, { name });
  if (typeof name !== "string" || name.length === 0) throw bad("it is empty");
  const colon = name.indexOf(":");
  const modelPart = colon < 0 ? name : name.slice(0, colon);
  const tag = colon < 0 ? "latest" : name.slice(colon + 1);
  if (!PART.test(modelPart)) throw bad("the model part must be lowercase [a-z0-9_.-] starting with [a-z0-9_]");
  if (!PART.test(tag)) throw bad("the tag must be lowercase [a-z0-9_.-] starting with [a-z0-9_] (one ':' at most)");
  const model = `${prefix}${modelPart}`;
  if (model.length > OLLAMA_PART_MAX) throw bad(`'${model}' is longer than ${OLLAMA_PART_MAX} characters`);
  if (tag.length > OLLAMA_PART_MAX) throw bad(`the tag is longer than ${OLLAMA_PART_MAX} characters`);
  return { model, tag, full: `${model}:${tag}` };
}

/** `<store>/manifests/registry.ollama.ai/library/<model>/<tag>`. */
export function manifestPath(storeDir: string, n: OllamaName): string {
  return join(storeDir, "manifests", OLLAMA_REGISTRY_HOST, OLLAMA_NAMESPACE, n.model, n.tag);
}

/** `<store>/blobs/sha256-<hex>` for a digest `sha256:<hex>`. */
export function blobPath(storeDir: string, digest: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new EngineError("HOST_BAD_DIGEST", `not a sha256 digest: ${JSON.stringify(digest)}`);
  return join(storeDir, "blobs", digest.replace(":", "-"));
}

export interface ManifestLayer {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

export interface OllamaManifest {
  readonly schemaVersion: 2;
  readonly mediaType: string;
  readonly config: ManifestLayer;
  readonly layers: readonly ManifestLayer[];
}

/** Ollama's ConfigV2 (types/model/config.go), plus our ownership marker (Ollama ignores unknown fields). */
export interface OllamaConfig {
  readonly model_format: "gguf";
  readonly model_family: string;
  readonly model_families: readonly string[];
  readonly model_type: string;
  readonly file_type: string;
  readonly architecture: string;
  readonly os: string;
  readonly rootfs: { readonly type: "layers"; readonly diff_ids: readonly string[] };
  /** Marks a config blob written by secneuron (removeModel deletes only blobs that carry it). */
  readonly secneuron: { readonly name: string };
}

export function manifestJson(config: ManifestLayer, weights: ManifestLayer): string {
  const m: OllamaManifest = { schemaVersion: 2, mediaType: MANIFEST_MEDIA_TYPE, config, layers: [weights] };
  return `${JSON.stringify(m)}\n`;
}

/** Go's GOARCH / GOOS for this process (what Ollama writes in a config). */
export function goArch(): string {
  return ({ x64: "amd64", arm64: "arm64", ia32: "386", arm: "arm" } as Record<string, string>)[process.arch] ?? process.arch;
}
export function goOs(): string {
  return process.platform === "win32" ? "windows" : process.platform;
}

/** llama.cpp's llama_ftype (general.file_type) as Ollama names it (fs/ggml FileType.String). */
export const LLAMA_FTYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M",
  13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS",
  21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
  29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
};

export interface FileDigest {
  /** `sha256:<hex>`. */
  readonly digest: string;
  readonly size: number;
}

function statKey(path: string, st: Stats): string {
  return `${path}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeMs}`;
}

/**
 * Streaming SHA-256 of files, cached per (path, device, inode, size, mtime) so an unchanged file
 * is hashed once; concurrent callers share one pass. A file that changes while it is hashed is
 * hashed again (three tries).
 */
export class DigestCache {
  private readonly cache = new Map<string, Promise<FileDigest>>();

  constructor(private readonly maxEntries = 256) {}

  async digest(path: string): Promise<FileDigest> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = statSync(path);
      const key = statKey(path, before);
      let p = this.cache.get(key);
      if (!p) {
        p = hashFile(path);
        this.cache.set(key, p);
        p.catch(() => this.cache.delete(key));
        while (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
      }
      const d = await p;
      const after = statSync(path);
      if (statKey(path, after) === key && d.size === after.size) return d;
      this.cache.delete(key);
    }
    throw new EngineError("HOST_MODEL_CHANGING", `${path} kept changing while it was hashed`, { modelPath: path });
  }

  get size(): number {
    return this.cache.size;
  }
}

export function hashFile(path: string): Promise<FileDigest> {
  return new Promise((res, rej) => {
    const h = createHash("sha256");
    let size = 0;
    const s = createReadStream(path, { highWaterMark: 1 << 20 });
    s.on("data", (c) => {
      size += (c as Buffer).length;
      h.update(c as Buffer);
    });
    s.on("error", rej);
    s.on("end", () => res({ digest: `sha256:${h.digest("hex")}`, size }));
  });
}
