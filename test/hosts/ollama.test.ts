/**
 * The "ollama" host without an Ollama binary: registrations land in a temporary store on tmpfs
 * and are checked against Ollama's layout; a tiny fake server on 127.0.0.1 answers /api/version.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { appendFileSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync, type Stats } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { EngineError, SecNeuronError } from "../../plugin/errors.js";
import {
  CONFIG_MEDIA_TYPE,
  DigestCache,
  MANIFEST_MEDIA_TYPE,
  MODEL_MEDIA_TYPE,
  OllamaHost,
  STORE_TMP_DIR,
  defaultOllamaStoreDir,
  ollamaModelName,
  type OllamaConfig,
  type OllamaManifest,
} from "../../plugin/hosts/ollama/index.js";
import { oracleFixtures, scratchDir } from "../engine/helpers.js";
import { rejection } from "../helpers/rejection.js";

const scratch = scratchDir("ollama-host");
let variantA: string; // q8_0 oracle copy on tmpfs
let variantB: string; // f16 oracle copy on tmpfs
let store: string;
let n = 0;
const quiet = (): void => {};

const sha256 = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Every entry under a folder, recursively, with lstat. */
function walk(dir: string): Array<{ path: string; st: Stats }> {
  const out: Array<{ path: string; st: Stats }> = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    const st = lstatSync(p);
    out.push({ path: p, st });
    if (st.isDirectory()) out.push(...walk(p));
  }
  return out;
}

function manifestFile(model: string, tag = "latest"): string {
  return join(store, "manifests", "registry.ollama.ai", "library", model, tag);
}

function readManifest(model: string, tag = "latest"): OllamaManifest {
  return JSON.parse(readFileSync(manifestFile(model, tag), "utf8")) as OllamaManifest;
}

function blob(digest: string): string {
  return join(store, "blobs", digest.replace(":", "-"));
}

function files(): string[] {
  return walk(store).filter((e) => !e.st.isDirectory()).map((e) => e.path.slice(store.length + 1)).sort();
}


function newHost(opts: ConstructorParameters<typeof OllamaHost>[0] = {}): OllamaHost {
  return new OllamaHost({ storeDir: store, upstream: "http://127.0.0.1:1", healthTimeoutMs: 500, warn: quiet, ...opts });
}

beforeAll(async () => {
  const fx = await oracleFixtures();
  mkdirSync(join(scratch.dir, "variants"));
  variantA = join(scratch.dir, "variants", "variant-a.gguf");
  variantB = join(scratch.dir, "variants", "variant-b.gguf");
  copyFileSync(fx.q8_0, variantA);
  copyFileSync(fx.f16, variantB);
});

beforeEach(() => {
  store = join(scratch.dir, `store-${n++}`);
});

afterAll(() => scratch.cleanup());

describe("names", () => {
  it("maps variant names into our namespace, tag latest by default", () => {
    expect(ollamaModelName("oracle-q8")).toEqual({ model: "secneuron-oracle-q8", tag: "latest", full: "secneuron-oracle-q8:latest" });
    expect(ollamaModelName("qwen2.5:7b--letters.digits")).toEqual({ model: "secneuron-qwen2.5", tag: "7b--letters.digits", full: "secneuron-qwen2.5:7b--letters.digits" });
    expect(ollamaModelName("m", "sn_")).toMatchObject({ full: "sn_m:latest" });
  });

  it.each(["", "Oracle", "a/b", "a b", "a:b:c", "-a", "a:", ":a", "a\u0000", "a:Tag", "é", "x".repeat(71), `a:${"t".repeat(81)}`])("rejects %j", (bad) => {
    const e = (() => {
      try {
        ollamaModelName(bad);
      } catch (x) {
        return x as SecNeuronError;
      }
      throw new Error("accepted");
    })();
    expect(e).toBeInstanceOf(EngineError);
    expect(e.code).toBe("HOST_BAD_MODEL_NAME");
  });

  it("rejects a bad prefix and a bad upstream", () => {
    expect(() => new OllamaHost({ storeDir: "x", namePrefix: "Bad/" })).toThrow(/namePrefix/);
    expect(() => new OllamaHost({ storeDir: "x", upstream: "ftp://127.0.0.1" })).toThrow(/http/);
  });

  it("defaults: upstream 127.0.0.1:11434 (localhost rewritten), store $OLLAMA_MODELS or ~/.ollama/models", () => {
    expect(new OllamaHost({ storeDir: "x" }).upstream).toBe("http://127.0.0.1:11434");
    expect(new OllamaHost({ storeDir: "x", upstream: "http://localhost:11500/" }).upstream).toBe("http://127.0.0.1:11500");
    expect(defaultOllamaStoreDir({ OLLAMA_MODELS: "/srv/models" })).toBe("/srv/models");
    expect(defaultOllamaStoreDir({})).toMatch(/\.ollama[/\\]models$/);
    expect(new OllamaHost({ env: { OLLAMA_MODELS: join(scratch.dir, "env-store") } }).storeDir).toBe(join(scratch.dir, "env-store"));
  });
});

describe("registration", () => {
  it("writes a manifest and config in Ollama's layout, the weights blob a symlink to the variant", async () => {
    const host = newHost();
    const t = await host.ensureModel("oracle-q8", variantA);
    expect(t).toEqual({ baseUrl: "http://127.0.0.1:1", modelName: "secneuron-oracle-q8:latest" });

    const weightsBytes = readFileSync(variantA);
    const m = readManifest("secneuron-oracle-q8");
    expect(m.schemaVersion).toBe(2);
    expect(m.mediaType).toBe(MANIFEST_MEDIA_TYPE);
    expect(m.config.mediaType).toBe(CONFIG_MEDIA_TYPE);
    expect(m.layers).toHaveLength(1);
    expect(m.layers[0]).toEqual({ mediaType: MODEL_MEDIA_TYPE, digest: sha256(weightsBytes), size: weightsBytes.length });

    const configBytes = readFileSync(blob(m.config.digest));
    expect(m.config.digest).toBe(sha256(configBytes));
    expect(m.config.size).toBe(configBytes.length);
    const c = JSON.parse(configBytes.toString("utf8")) as OllamaConfig;
    expect(c).toMatchObject({ model_format: "gguf", model_family: "llama", model_families: ["llama"], file_type: "Q8_0", rootfs: { type: "layers", diff_ids: [sha256(weightsBytes)] }, secneuron: { name: "oracle-q8" } });
    expect(typeof c.model_type).toBe("string");
    expect(c.os).toBeTruthy();
    expect(c.architecture).toBeTruthy();

    const link = blob(m.layers[0]!.digest);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(variantA);
    expect(realpathSync(link)).toBe(realpathSync(variantA));
    expect(statSync(link).ino).toBe(statSync(variantA).ino);
    expect(readFileSync(link).equals(weightsBytes)).toBe(true);
    expect(host.registration("oracle-q8")?.weights.digest).toBe(sha256(weightsBytes));
  });

  it("puts no weight bytes in the store: only small regular files, no hard links to the variant", async () => {
    const host = newHost();
    await host.ensureModel("oracle-q8", variantA);
    await host.ensureModel("oracle-f16", variantB);
    const entries = walk(store);
    const regular = entries.filter((e) => e.st.isFile());
    expect(regular.map((e) => e.path.split("/").pop())).toHaveLength(4); // 2 manifests + 2 configs
    for (const e of regular) {
      expect(Number(e.st.size)).toBeLessThan(4096);
      expect(Number(e.st.nlink)).toBe(1);
    }
    expect(entries.filter((e) => e.st.isSymbolicLink())).toHaveLength(2);
    expect(statSync(variantA).nlink).toBe(1);
    expect(statSync(variantB).nlink).toBe(1);
    expect(readdirSync(join(store, STORE_TMP_DIR))).toEqual([]); // no temp files left
  });

  it("is idempotent: registering again changes nothing, also from a fresh instance", async () => {
    const host = newHost();
    const t1 = await host.ensureModel("oracle-q8", variantA);
    const before = files();
    const mtime = statSync(manifestFile("secneuron-oracle-q8")).mtimeMs;
    const t2 = await host.ensureModel("oracle-q8", variantA);
    expect(t2).toEqual(t1);
    expect(files()).toEqual(before);
    expect(statSync(manifestFile("secneuron-oracle-q8")).mtimeMs).toBe(mtime); // fast path: not rewritten

    const again = newHost({ removeStale: false });
    expect(await again.ensureModel("oracle-q8", variantA)).toEqual(t1);
    expect(files()).toEqual(before);

    // Concurrent calls for one name agree and write once.
    const host3 = newHost({ removeStale: false });
    const ts = await Promise.all([1, 2, 3, 4].map(() => host3.ensureModel("oracle-q8", variantA)));
    for (const t of ts) expect(t).toEqual(t1);
    expect(files()).toEqual(before);
  });

  it("rewrites the manifest when it was deleted behind its back", async () => {
    const host = newHost();
    await host.ensureModel("oracle-q8", variantA);
    const before = files();
    const { rmSync } = await import("node:fs");
    rmSync(manifestFile("secneuron-oracle-q8"));
    await host.ensureModel("oracle-q8", variantA);
    expect(files()).toEqual(before);
  });

  it("re-registers a name whose file changed, and drops the old blobs", async () => {
    const host = newHost();
    await host.ensureModel("m", variantA);
    const old = readManifest("secneuron-m");
    await host.ensureModel("m", variantB);
    const m = readManifest("secneuron-m");
    expect(m.layers[0]!.digest).toBe(sha256(readFileSync(variantB)));
    expect(existsSync(blob(old.layers[0]!.digest))).toBe(false);
    expect(existsSync(blob(old.config.digest))).toBe(false);
    expect(readlinkSync(blob(m.layers[0]!.digest))).toBe(variantB);
  });

  it("keeps the registration when the variant's bytes change in place (the digest goes stale, by design)", async () => {
    const live = join(scratch.dir, "variants", "live.gguf");
    copyFileSync(variantA, live);
    const host = newHost();
    await host.ensureModel("live", live);
    const digest = readManifest("secneuron-live").layers[0]!.digest;
    const bytes = readFileSync(live);
    bytes[bytes.length - 1] ^= 0xff; // a revoke zeroes tensor bytes in place: same inode and size
    writeFileSync(live, bytes);
    await host.ensureModel("live", live);
    expect(readManifest("secneuron-live").layers[0]!.digest).toBe(digest);
    expect(readFileSync(blob(digest)).equals(bytes)).toBe(true); // Ollama reads the live bytes
  });

  it("refuses two variant names that map to one Ollama model", async () => {
    const host = newHost();
    await host.ensureModel("same", variantA);
    const e = await rejection<SecNeuronError>(host.ensureModel("same:latest", variantB));
    expect(e.code).toBe("HOST_NAME_COLLISION");
    expect(readManifest("secneuron-same").layers[0]!.digest).toBe(sha256(readFileSync(variantA)));
  });

  it("shares one link between names for the same file, and removes it with the last", async () => {
    const host = newHost();
    await host.ensureModel("one", variantA);
    await host.ensureModel("two", variantA);
    const d = sha256(readFileSync(variantA));
    await host.removeModel("one");
    expect(lstatSync(blob(d)).isSymbolicLink()).toBe(true);
    expect(existsSync(manifestFile("secneuron-one"))).toBe(false);
    await host.removeModel("two");
    expect(existsSync(blob(d))).toBe(false);
    expect(files()).toEqual([]);
  });
});

describe("rejections write nothing", () => {
  it("a missing variant file", async () => {
    const host = newHost();
    const e = await rejection<SecNeuronError>(host.ensureModel("gone", join(scratch.dir, "variants", "nope.gguf")));
    expect(e).toBeInstanceOf(EngineError);
    expect(e.code).toBe("HOST_MODEL_MISSING");
    expect(files()).toEqual([]);
    expect(host.registered()).toEqual([]);
  });

  it("an invalid GGUF", async () => {
    const bad = join(scratch.dir, "variants", "bad.gguf");
    writeFileSync(bad, Buffer.concat([Buffer.from("GGUF"), Buffer.alloc(60, 7)]));
    const junk = join(scratch.dir, "variants", "junk.gguf");
    writeFileSync(junk, "not a model at all");
    const host = newHost();
    for (const p of [bad, junk]) {
      const e = await rejection<SecNeuronError>(host.ensureModel("bad", p));
      expect(e).toBeInstanceOf(SecNeuronError);
      expect(files()).toEqual([]);
    }
  });

  it("an invalid name", async () => {
    const host = newHost();
    const e = await rejection<SecNeuronError>(host.ensureModel("Bad Name", variantA));
    expect(e.code).toBe("HOST_BAD_MODEL_NAME");
    expect(files()).toEqual([]);
  });

  it("a foreign blob with the same digest (e.g. the user imported the same weights)", async () => {
    const d = sha256(readFileSync(variantA));
    mkdirSync(join(store, "blobs"), { recursive: true });
    copyFileSync(variantA, blob(d)); // a real blob, as `ollama create` makes
    const host = newHost();
    const e = await rejection<SecNeuronError>(host.ensureModel("dup", variantA));
    expect(e.code).toBe("HOST_BLOB_CONFLICT");
    expect(existsSync(manifestFile("secneuron-dup"))).toBe(false);
    expect(lstatSync(blob(d)).isFile()).toBe(true);
    expect(files()).toEqual([`blobs/${d.replace(":", "-")}`]);
  });

  it("replaces a dangling link left behind, but refuses a live link to another file", async () => {
    const d = sha256(readFileSync(variantA));
    mkdirSync(join(store, "blobs"), { recursive: true });
    symlinkSync(join(scratch.dir, "variants", "long-gone.gguf"), blob(d));
    const host = newHost();
    await host.ensureModel("dangle", variantA);
    expect(readlinkSync(blob(d))).toBe(variantA);
    await host.removeModel("dangle");

    const other = join(scratch.dir, "variants", "copy-of-a.gguf");
    copyFileSync(variantA, other);
    symlinkSync(other, blob(d));
    const e = await rejection<SecNeuronError>(host.ensureModel("dangle", variantA));
    expect(e.code).toBe("HOST_BLOB_CONFLICT");
    expect(readlinkSync(blob(d))).toBe(other);
  });
});

describe("removeModel and stale registrations", () => {
  /** A model of the user's, as Ollama stores it: real blobs, manifest under library/. */
  function userModel(name: string): { weights: string; config: string } {
    const w = Buffer.from(`user weights of ${name}`);
    const c = Buffer.from(JSON.stringify({ model_format: "gguf", model_family: "llama" }));
    const wd = sha256(w);
    const cd = sha256(c);
    mkdirSync(join(store, "blobs"), { recursive: true });
    writeFileSync(blob(wd), w);
    writeFileSync(blob(cd), c);
    mkdirSync(join(store, "manifests", "registry.ollama.ai", "library", name), { recursive: true });
    writeFileSync(
      manifestFile(name),
      JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_MEDIA_TYPE, config: { mediaType: CONFIG_MEDIA_TYPE, digest: cd, size: c.length }, layers: [{ mediaType: MODEL_MEDIA_TYPE, digest: wd, size: w.length }] }),
    );
    return { weights: wd, config: cd };
  }

  it("removes our manifest and blobs only, leaving the user's models alone", async () => {
    const user = userModel("llama3");
    const before = files();
    const host = newHost();
    await host.ensureModel("oracle-q8", variantA);
    await host.removeModel("oracle-q8");
    await host.removeModel("oracle-q8"); // again: no-op
    await host.removeModel("never-registered");
    await host.removeModel("Not Valid");
    expect(files()).toEqual(before);
    expect(existsSync(blob(user.weights))).toBe(true);
    expect(existsSync(join(store, "manifests", "registry.ollama.ai", "library", "secneuron-oracle-q8"))).toBe(false);
    expect(host.registered()).toEqual([]);
  });

  it("never deletes a blob another manifest still references (ollama cp of ours)", async () => {
    const host = newHost();
    await host.ensureModel("oracle-q8", variantA);
    const m = readManifest("secneuron-oracle-q8");
    mkdirSync(join(store, "manifests", "registry.ollama.ai", "library", "mycopy"), { recursive: true });
    copyFileSync(manifestFile("secneuron-oracle-q8"), manifestFile("mycopy"));
    await host.removeModel("oracle-q8");
    expect(existsSync(blob(m.layers[0]!.digest))).toBe(true);
    expect(existsSync(blob(m.config.digest))).toBe(true);
    expect(existsSync(manifestFile("secneuron-oracle-q8"))).toBe(false);
  });

  it("start() removes registrations an earlier run left under our prefix, nothing else", async () => {
    userModel("llama3");
    const userFiles = files();
    const crashed = newHost();
    await crashed.ensureModel("old", variantA);
    await crashed.ensureModel("old2:v1", variantB);
    const fresh = newHost();
    await fresh.start();
    expect(files()).toEqual(userFiles);
    const keep = newHost({ removeStale: false });
    await crashed.ensureModel("old", variantA);
    await keep.start();
    expect(files()).not.toEqual(userFiles);
  });

  it("stop() unregisters everything", async () => {
    const host = newHost();
    await host.ensureModel("a", variantA);
    await host.ensureModel("b:x", variantB);
    await host.stop();
    expect(files()).toEqual([]);
    expect(host.registered()).toEqual([]);
  });
});

describe("upstream", () => {
  let server: Server;
  let url: string;
  let status = 200;

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === "/api/version" && req.method === "GET") {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(status === 200 ? JSON.stringify({ version: "0.12.6" }) : JSON.stringify({ error: "boom" }));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("healthy() and version() ask GET /api/version; targets point at the upstream", async () => {
    const warnings: string[] = [];
    const host = newHost({ upstream: url, warn: (m) => warnings.push(m) });
    await host.start();
    expect(warnings).toEqual([]);
    expect(await host.healthy()).toBe(true);
    expect(await host.version()).toBe("0.12.6");
    expect(await host.ensureModel("oracle-q8", variantA)).toEqual({ baseUrl: url, modelName: "secneuron-oracle-q8:latest" });
    status = 500;
    expect(await host.healthy()).toBe(false);
    status = 200;
    const withHeaders = newHost({ upstream: `${url}/`, headers: { authorization: "Bearer k" } });
    expect(await withHeaders.ensureModel("oracle-q8", variantA)).toEqual({ baseUrl: url, modelName: "secneuron-oracle-q8:latest", headers: { authorization: "Bearer k" } });
  });

  it("start() warns but does not fail when the upstream is down; registration still works", async () => {
    const warnings: string[] = [];
    const host = newHost({ warn: (m) => warnings.push(m) });
    await host.start();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/does not answer/);
    expect(await host.healthy()).toBe(false);
    await host.ensureModel("oracle-q8", variantA);
    expect(existsSync(manifestFile("secneuron-oracle-q8"))).toBe(true);
  });

  it("start() fails when the store is not writable", async () => {
    const file = join(scratch.dir, "a-file");
    writeFileSync(file, "x");
    const host = newHost({ storeDir: join(file, "store") });
    const e = await rejection<SecNeuronError>(host.start());
    expect(e.code).toBe("HOST_STORE_NOT_WRITABLE");
    const e2 = await rejection<SecNeuronError>(host.ensureModel("oracle-q8", variantA));
    expect(e2.code).toBe("HOST_STORE_NOT_WRITABLE");
  });
});

describe("DigestCache", () => {
  it("hashes a file once per (path, inode, size, mtime) and again after a change", async () => {
    const p = join(scratch.dir, "variants", "hash-me.bin");
    writeFileSync(p, Buffer.alloc(3 << 20, 1));
    const cache = new DigestCache();
    const [a, b] = await Promise.all([cache.digest(p), cache.digest(p)]);
    expect(a).toEqual(b);
    expect(a).toEqual({ digest: sha256(readFileSync(p)), size: 3 << 20 });
    expect(cache.size).toBe(1);
    appendFileSync(p, "more");
    const c = await cache.digest(p);
    expect(c).toEqual({ digest: sha256(readFileSync(p)), size: (3 << 20) + 4 });
    expect(cache.size).toBe(2);
  });
});
