/**
 * The sidecar process: assembles the pieces (authority trust anchor, models, manifests watcher,
 * host, variant cache and resolver, audit log, metrics), serves the app, and shuts down
 * gracefully: stop accepting, drain in-flight requests, wipe every variant file, stop the host.
 */
import { mkdirSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { SecNeuronError } from "../errors.js";
import { AuditLog } from "../edges/audit-log.js";
import { loadAuthorityPublic } from "../edges/authority.js";
import { ManifestWatcher, type ManifestLogger } from "../edges/manifests/watcher.js";
import { Enrollments } from "../edges/enrollments.js";
import { serverKeepAlive } from "../edges/keep-alive.js";
import { ModelRegistry } from "../edges/model-registry.js";
import { isMemoryFilesystem } from "../edges/unseal.js";
import { VariantCache } from "../edges/variant-cache.js";
import { VariantResolver, type Caller } from "../edges/variant-resolver.js";
import { EmbeddedHost } from "../hosts/embedded/embedded-host.js";
import { OllamaHost } from "../hosts/ollama/ollama-host.js";
import { LlamaServerHost } from "../hosts/llama-server/llama-server-host.js";
import type { HostAdapter } from "../hosts/host-adapter.js";
import { buildApp } from "./app.js";
import { createMetrics, type SidecarMetrics } from "./metrics.js";

export const SIDECAR_VERSION = "0.1.0";

export interface SidecarOptions {
  /** host:port to listen on (default 127.0.0.1:11435; port 0 picks a free one). */
  readonly listen?: string;
  readonly modelsDir: string;
  readonly manifestsDir: string;
  /** Authority directory (only its public part is read): the trust anchor for manifests and sealed models. */
  readonly authorityDir: string;
  readonly host?: "embedded" | "ollama" | "llama-server";
  /** llama-server host: the binary (default: the npm run build:llama-server cache). */
  readonly llamaServer?: string;
  /** Ollama host: the server's URL (default http://127.0.0.1:11434). */
  readonly upstream?: string;
  /** Ollama host: the store folder the server reads (its OLLAMA_MODELS). */
  readonly ollamaModels?: string;
  /** Where variants go (default /dev/shm/secneuron-<pid>). */
  readonly variantDir?: string;
  readonly variantBudgetBytes?: number;
  readonly allowDisk?: boolean;
  readonly auditLog?: string;
  readonly logPrompts?: boolean;
  readonly threads?: number;
  readonly contextSize?: number;
  readonly usePolling?: boolean;
  /** Tests only: accept manifests with a weak KDF. */
  readonly allowWeakKdf?: boolean;
  readonly log?: (line: Record<string, unknown>) => void;
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw new SecNeuronError("SERVE_BAD_LISTEN", `--listen must be host:port, got '${s}'`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

export class Sidecar {
  private inflight = new Set<import("node:net").Socket>();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly url: string,
    private readonly server: Server,
    private readonly watcher: ManifestWatcher,
    readonly host: HostAdapter,
    private readonly cache: VariantCache,
    private readonly audit: AuditLog,
    readonly metrics: SidecarMetrics,
    private readonly variantDir: string,
    private readonly ownsVariantDir: boolean,
    readonly registry: () => ModelRegistry,
  ) {}

  static async start(opts: SidecarOptions): Promise<Sidecar> {
    const log = opts.log ?? ((l) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...l })}\n`));
    const authority = loadAuthorityPublic(opts.authorityDir);
    const expected = { authority: authority.fingerprint, issuer: authority.issuerKey };
    const registryNow = ModelRegistry.scan(opts.modelsDir, expected);
    for (const p of registryNow.problems) log({ level: "warn", msg: "model not served", ...p });
    let registry = registryNow;
    const variantDir = opts.variantDir ?? join("/dev/shm", `secneuron-${process.pid}`);
    const ownsVariantDir = !opts.variantDir;
    mkdirSync(variantDir, { recursive: true, mode: 0o700 });
    if (!opts.allowDisk && !isMemoryFilesystem(variantDir)) {
      throw new SecNeuronError("SERVE_PERSISTENT_VARIANTS", `${variantDir} is not a memory filesystem: decrypted weights would reach persistent storage (use --allow-disk to opt in)`);
    }
    const kind = opts.host ?? "embedded";
    // llama-server's prompt cache would keep KV computed with weights a live revoke has zeroed.
    const host: HostAdapter = kind === "ollama"
      ? new OllamaHost({ upstream: opts.upstream, storeDir: opts.ollamaModels, warn: (m) => log({ level: "warn", msg: m }) })
      : kind === "llama-server"
        ? new LlamaServerHost({ binary: opts.llamaServer, threads: opts.threads ?? 1, contextSize: opts.contextSize ?? 2048, cachePrompt: false })
        : new EmbeddedHost({ threads: opts.threads ?? 1, contextSize: opts.contextSize ?? 2048 });
    await host.start();
    const resolver = new VariantResolver(host);
    const cache = new VariantCache({ dir: variantDir, budgetBytes: opts.variantBudgetBytes ?? 8 * 2 ** 30, allowDisk: opts.allowDisk, onEvict: (v) => resolver.evicted(v) });
    resolver.attach(cache);
    const metrics = createMetrics();
    const audit = new AuditLog(opts.auditLog, (e) => log({ level: "error", msg: "audit log write failed", error: e.message }));
    const logger: ManifestLogger = (rec) => log({ ...rec } as Record<string, unknown>);
    const watcher = new ManifestWatcher({
      dir: opts.manifestsDir, authority: { issuerKey: authority.issuerKey, fingerprint: authority.fingerprint },
      allowWeakKdf: opts.allowWeakKdf, usePolling: opts.usePolling, logger,
    });
    const activeCallers = (): Array<Pick<Caller, "attributes" | "models">> =>
      watcher.current().entries().map((e) => ({ attributes: e.manifest.attributes, models: e.manifest.models }));
    const enrollments = new Enrollments();
    watcher.onRevoke((manifest, info) => {
      resolver.forgetManifest(manifest.id);
      enrollments.forgetManifest(manifest.id);
      void resolver.revokeUnjustified(registry.list(), activeCallers()).then((n) => {
        log({ level: "info", msg: "manifest revoked", id: manifest.id, subject: manifest.subject, reason: info.reason, variantsRevoked: n });
      }, (e: Error) => log({ level: "error", msg: "live revoke failed", error: e.message }));
    });
    await watcher.ready();
    const updateGauges = () => {
      metrics.variants.set(cache.size);
      metrics.variantBytes.set(cache.bytes);
      const st = watcher.status();
      for (const s of ["active", "rejected", "stale"]) metrics.manifests.set({ state: s }, st.files.filter((f) => f.state === s).length);
    };
    const app = buildApp({
      registry: () => registry,
      authenticate: (token, now) => watcher.authenticate(token, now),
      activeManifest: (id) => watcher.current().get(id)?.manifest,
      enrollments,
      resolver, host, audit, metrics, version: SIDECAR_VERSION, logPrompts: opts.logPrompts,
      health: () => {
        updateGauges();
        const st = watcher.status();
        // Unauthenticated: counts only. Model names are listed per key (/api/tags), never here.
        const models = registry.list();
        return {
          manifests: { state: st.state, active: st.keyringSize, files: st.files.length },
          models: { served: models.length, sealed: models.filter((m) => m.sealed).length, rejected: registry.problems.length },
          variants: { count: cache.size, bytes: cache.bytes },
        };
      },
    });
    const { host: h, port } = parseListen(opts.listen ?? "127.0.0.1:11435");
    const server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(port, h, () => resolve(s));
      serverKeepAlive(s);
      s.once("error", reject);
    });
    const addr = server.address() as AddressInfo;
    const url = `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
    const sc = new Sidecar(url, server, watcher, host, cache, audit, metrics, variantDir, ownsVariantDir, () => registry);
    server.on("connection", (sock) => {
      sc.inflight.add(sock);
      sock.on("close", () => sc.inflight.delete(sock));
    });
    sc.rescanModels = () => {
      const next = ModelRegistry.scan(opts.modelsDir, expected);
      for (const p of next.problems) log({ level: "warn", msg: "model not served", ...p });
      registry = next;
    };
    log({ level: "info", msg: "secneuron sidecar listening", url, host: host.kind, models: registry.list().map((m) => m.name), manifests: watcher.current().size });
    return sc;
  }

  /** Re-read the models folder (new or removed model files). */
  rescanModels: () => void = () => {};

  /** Graceful shutdown: drain for up to `graceMs`, then wipe variants and stop the host. */
  close(graceMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeIdleConnections();
        setTimeout(() => {
          for (const s of this.inflight) s.destroy();
          resolve();
        }, graceMs).unref();
      });
      await this.watcher.close();
      await this.cache.dispose();
      await this.host.stop();
      await this.audit.close();
      if (this.ownsVariantDir) rmSync(this.variantDir, { recursive: true, force: true });
    })();
    return this.closing;
  }
}
