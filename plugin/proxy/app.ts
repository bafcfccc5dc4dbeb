/**
 * The sidecar's HTTP front: one express app, no module-level state. Every request goes through
 * the same steps, and anything not explicitly allowed is denied:
 *   route (default-deny table) -> authenticate (token -> manifest) -> route access (admin-only
 *   routes need `role:admin`) -> model extraction (every place a request can name one) ->
 *   loading-field policy -> scope and task routing -> variant -> forward with the model renamed
 *   -> response renamed back, streaming, line by line.
 * Listings are built from what the caller may use. Each decision is audited and counted.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import express, { type Express, type Request, type Response } from "express";
import { createProxyMiddleware } from "http-proxy-middleware";
import { SecNeuronError } from "../errors.js";
import type { UserKey } from "../core/abe/fame.js";
import type { KeyManifest } from "../core/manifest/manifest.js";
import type { AuditEvent, AuditLog } from "../edges/audit-log.js";
import type { AuthResult } from "../edges/manifests/keyring.js";
import type { Enrollments } from "../edges/enrollments.js";
import type { ModelRegistry, ServedModel } from "../edges/model-registry.js";
import { AccessError, grantedNodes, inScope, variantName, type Caller, type Resolved, type VariantResolver } from "../edges/variant-resolver.js";
import { keepAliveAgent } from "../edges/keep-alive.js";
import type { HostAdapter } from "../hosts/host-adapter.js";
import { apiError, apiErrorFrom, type ApiErrorResponse, type ApiFlavor } from "./api-error.js";
import { decodeOllamaPublicKey, ollamaPublicKeyText, parseCredentials, verifyOllamaSignature } from "./auth.js";
import { ProxyError } from "./errors.js";
import type { SidecarMetrics } from "./metrics.js";
import { createModelRenamer, createResponseRewriter, responseKindFor, type ModelRenamer } from "./model-rewrite.js";
import { applyLoadingPolicy, extractModels, rewriteExtracted } from "./request-model.js";
import { checkRouteAccess, isDenial, matchRoute, type RouteMatch } from "./routes.js";

export const TASK_HEADER = "x-secneuron-task";
const MAX_BODY_BYTES = 32 << 20;

export interface AppDeps {
  readonly registry: () => ModelRegistry;
  readonly authenticate: (token: string, now: number) => Promise<AuthResult>;
  /** The manifest in force under an id (for enrolled Ollama keys). */
  readonly activeManifest?: (id: string) => KeyManifest | undefined;
  /** Enrolled Ollama public keys (OLLAMA_AUTH request signatures). */
  readonly enrollments?: Enrollments;
  readonly resolver: VariantResolver;
  readonly host: HostAdapter;
  readonly audit: AuditLog;
  readonly metrics: SidecarMetrics;
  readonly version: string;
  readonly logPrompts?: boolean;
  readonly now?: () => number;
  /** Extra fields for /healthz. */
  readonly health?: () => Record<string, unknown>;
}

interface Pending {
  id: string;
  start: number;
  match?: RouteMatch;
  caller?: Caller & { manifest: KeyManifest };
  model?: string;
  resolved?: Resolved;
  body?: Buffer;
  prompt?: unknown;
  audited?: boolean;
}

type SnRequest = IncomingMessage & { sn?: Pending };

function send(res: Response, e: ApiErrorResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(e.status);
  for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
  res.send(typeof e.body === "string" ? e.body : JSON.stringify(e.body));
}

/**
 * Read a request body up to `limit` bytes. Past the limit the rest is drained and discarded
 * (not buffered), so the client can finish sending and read the 413 instead of a reset.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    const chunks: Buffer[] = [];
    let n = 0;
    let over = declared > limit;
    const fail = () => reject(new ProxyError("BODY_TOO_LARGE", `request body exceeds ${limit} bytes`));
    req.on("data", (c: Buffer) => {
      if (over) return;
      n += c.length;
      if (n > limit) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => (over ? fail() : resolve(Buffer.concat(chunks))));
    req.on("error", reject);
  });
}

function taskHeader(req: IncomingMessage): string[] | null {
  const raw = req.headersDistinct[TASK_HEADER];
  if (!raw) return null;
  if (raw.length !== 1) throw new ProxyError("BODY_UNEXPECTED", `${TASK_HEADER} given more than once`);
  const tasks = raw[0]!.split(",").map((t) => t.trim()).filter(Boolean);
  if (!tasks.length) throw new ProxyError("BODY_UNEXPECTED", `${TASK_HEADER} is empty`);
  for (const t of tasks) if (!/^[a-z][a-z0-9_-]{0,63}$/.test(t)) throw new ProxyError("BODY_UNEXPECTED", `${TASK_HEADER}: '${t.slice(0, 64)}' is not a task name`);
  return [...new Set(tasks)].sort();
}

function callerOf(manifest: KeyManifest, userKey: UserKey): Caller & { manifest: KeyManifest } {
  return { manifest, manifestId: manifest.id, subject: manifest.subject, attributes: manifest.attributes, models: manifest.models, userKey };
}

/** The entry /api/tags shows for a model. */
function tagsEntry(m: ServedModel) {
  return {
    name: `${m.name}:latest`, model: `${m.name}:latest`, modified_at: m.modifiedAt.toISOString(), size: m.size,
    digest: m.sealed ? m.model.info.plaintextSha256 : "", details: { format: "gguf", family: "llama", families: ["llama"], parameter_size: "", quantization_level: "" },
  };
}

export function buildApp(deps: AppDeps): Express {
  const now = deps.now ?? Date.now;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  const audit = (req: SnRequest, res: ServerResponse, decision: AuditEvent["decision"], reason: string): void => {
    const p = req.sn;
    if (!p || p.audited) return;
    p.audited = true;
    const latency = performance.now() - p.start;
    const route = p.match?.route.id ?? "unmatched";
    deps.audit.write({
      time: new Date().toISOString(), id: p.id, subject: p.caller?.subject ?? null, manifest: p.caller?.manifestId ?? null,
      method: req.method ?? "", route, model: p.model ?? null, variant: p.resolved?.variantName ?? null, tasks: p.resolved?.tasks ? [...p.resolved.tasks] : null,
      decision, reason, status: res.statusCode, latencyMs: Number(latency.toFixed(2)),
      ...(deps.logPrompts && p.prompt !== undefined ? { prompt: p.prompt } : {}),
    });
    deps.metrics.requests.inc({ route, decision, status: String(res.statusCode) });
    deps.metrics.latency.observe({ route, decision }, latency / 1000);
  };

  const deny = (req: SnRequest, res: Response, flavor: ApiFlavor, err: unknown): void => {
    const e = err instanceof AccessError ? apiError(flavor, err.status, err.message, err.code) : apiErrorFrom(flavor, err);
    if (!(err instanceof SecNeuronError)) console.error(`[${req.sn?.id}] internal error:`, err);
    send(res, e);
    audit(req, res, e.status >= 500 ? "error" : "deny", err instanceof SecNeuronError ? err.code : "INTERNAL");
  };

  // Health and metrics: answered here, never forwarded.
  app.get("/healthz", async (_req, res) => {
    const hostOk = await deps.host.healthy().catch(() => false);
    res.status(hostOk ? 200 : 503).json({ status: hostOk ? "ok" : "degraded", host: { kind: deps.host.kind, healthy: hostOk }, auditErrors: deps.audit.errors, ...deps.health?.() });
  });
  app.get("/metrics", async (_req, res) => {
    res.setHeader("content-type", deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });

  // Renamers are pure functions of (variant, caller's name): build each once, not per request.
  const renamers = new Map<string, ModelRenamer>();
  const renamerFor = (variant: string | undefined, model: string): ModelRenamer => {
    const key = `${variant ?? ""}\0${model}`;
    let r = renamers.get(key);
    if (!r) {
      if (renamers.size >= 4096) renamers.clear();
      r = createModelRenamer(variant ? [[variant, model]] : []);
      renamers.set(key, r);
    }
    return r;
  };

  // Keep connections to the host open: a new TCP connection per request costs more than the proxy.
  const upstreamAgent = keepAliveAgent();
  const proxy = createProxyMiddleware<Request, Response>({
    agent: upstreamAgent,
    router: (req) => (req as SnRequest).sn!.resolved!.target.baseUrl,
    changeOrigin: true,
    selfHandleResponse: true,
    xfwd: false,
    pathRewrite: (_path, req) => (req as SnRequest).sn!.match!.upstreamPath,
    proxyTimeout: 600_000,
    on: {
      proxyReq: (proxyReq, req) => {
        const p = (req as SnRequest).sn!;
        for (const h of ["authorization", "x-api-key", TASK_HEADER, "cookie", "x-http-method-override", "x-method-override", "x-http-method", "content-length", "transfer-encoding", "accept-encoding"]) proxyReq.removeHeader(h);
        for (const [k, v] of Object.entries(p.resolved!.target.headers ?? {})) proxyReq.setHeader(k, v);
        if (p.body) {
          proxyReq.setHeader("content-type", "application/json");
          proxyReq.setHeader("content-length", p.body.length);
          proxyReq.write(p.body);
        }
      },
      proxyRes: (proxyRes, req, res) => {
        const p = (req as SnRequest).sn!;
        const status = proxyRes.statusCode ?? 502;
        const ct = proxyRes.headers["content-type"];
        const kind = responseKindFor(p.match!.route, status, typeof ct === "string" ? ct : undefined);
        const renamer = renamerFor(p.resolved!.target.modelName, p.model!);
        res.statusCode = status;
        for (const [k, v] of Object.entries(proxyRes.headers)) {
          if (v === undefined || ["content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"].includes(k)) continue;
          res.setHeader(k, v);
        }
        const rewriter = createResponseRewriter(kind, renamer);
        const done = () => {
          p.resolved?.release();
          audit(req as SnRequest, res, status < 400 ? "allow" : "deny", status < 400 ? "forwarded" : `upstream ${status}`);
        };
        res.on("close", done);
        rewriter.on("error", () => res.destroy());
        proxyRes.on("error", () => res.destroy());
        proxyRes.pipe(rewriter).pipe(res);
      },
      error: (err, req, res) => {
        const p = (req as SnRequest).sn;
        p?.resolved?.release();
        const r = res as ServerResponse;
        if ("status" in r) deny(req as SnRequest, r as Response, p?.match?.flavor ?? "ollama", new ProxyError("UPSTREAM_UNAVAILABLE", `the model host did not answer (${(err as Error).message})`));
        else r.destroy?.();
      },
    },
  });

  // No replay cache for Ollama signatures: the client signs only method, path and a whole-second
  // timestamp with deterministic ed25519, so two identical requests in one second carry the same
  // signature and a replay cache would refuse the second. Freshness (±120 s) is the protection;
  // docs/proxy-routes.md explains the risk (a captured header is reusable within the window).

  // Enroll an ollama CLI public key for the caller's manifest (token-authenticated).
  app.post("/secneuron/v1/enroll", async (req: Request, res: Response) => {
    const sreq = req as SnRequest;
    sreq.sn = { id: randomUUID(), start: performance.now() };
    try {
      if (!deps.enrollments) throw new AccessError("ROUTE_NOT_SUPPORTED", 501, "enrollment is not enabled on this sidecar");
      const creds = parseCredentials(req.headersDistinct, "ollama");
      if (isDenial(creds)) return deny(sreq, res, "ollama", creds.error);
      if (creds.kind !== "token") throw new ProxyError("AUTH_MISSING", "enrollment needs the manifest's API token (Authorization: Bearer <token>)");
      const auth = await deps.authenticate(creds.token, now());
      if (!auth.ok) throw new ProxyError("AUTH_INVALID", "invalid API token");
      let body: { publicKey?: unknown };
      try {
        body = JSON.parse((await readBody(req, 64 << 10)).toString("utf8")) as { publicKey?: unknown };
      } catch (e) {
        if (e instanceof ProxyError) throw e;
        throw new ProxyError("BODY_NOT_JSON", "body must be JSON: {\"publicKey\": \"ssh-ed25519 AAAA...\"}");
      }
      const text = typeof body.publicKey === "string" ? body.publicKey.trim().split(/\s+/) : [];
      const b64 = text[0] === "ssh-ed25519" ? text[1] : text[0];
      const raw = b64 ? decodeOllamaPublicKey(b64) : undefined;
      if (!raw) throw new ProxyError("BODY_FIELD_TYPE", "publicKey must be an ed25519 public key: the contents of ~/.ollama/id_ed25519.pub");
      const keyText = ollamaPublicKeyText(raw);
      deps.enrollments.enroll(keyText, auth.manifest, auth.userKey as UserKey, now());
      sreq.sn.caller = callerOf(auth.manifest, auth.userKey as UserKey);
      res.json({ enrolled: true, subject: auth.manifest.subject, manifest: auth.manifest.id, publicKey: keyText });
      audit(sreq, res, "allow", "enroll");
    } catch (e) {
      deny(sreq, res, "ollama", e);
    }
  });

  app.use(async (req: Request, res: Response, next) => {
    const sreq = req as SnRequest;
    const p: Pending = { id: randomUUID(), start: performance.now() };
    sreq.sn = p;
    res.setHeader("x-request-id", p.id);
    const m = matchRoute(req.method, req.originalUrl, req.headers);
    if (isDenial(m)) return deny(sreq, res, m.flavor, m.error);
    p.match = m;
    const flavor = m.flavor;
    try {
      const route = m.route;
      if (route.local) {
        res.json({ status: "ok" });
        return audit(sreq, res, "allow", "health");
      }
      if (route.access === "public") {
        if (route.id === "ollama.root") res.type("text/plain").send(req.method === "HEAD" ? "" : "Ollama is running");
        else res.json({ version: deps.version });
        return audit(sreq, res, "allow", "public");
      }
      // Authenticate.
      const creds = parseCredentials(req.headersDistinct, flavor);
      if (isDenial(creds)) return deny(sreq, res, flavor, creds.error);
      let manifest: KeyManifest;
      let userKey: UserKey;
      if (creds.kind === "ollama-signature") {
        // An unmodified ollama CLI (OLLAMA_AUTH=1): a fresh signature by an enrolled key.
        const v = verifyOllamaSignature(creds, { method: req.method, path: m.path, query: m.query, nowSeconds: Math.floor(now() / 1000) }, flavor);
        if (isDenial(v)) return deny(sreq, res, flavor, v.error);
        const bound = deps.enrollments?.resolve(creds.publicKeyText, (id) => deps.activeManifest?.(id), now());
        if (!bound) throw new ProxyError("AUTH_INVALID", "this public key is not enrolled, or its key manifest is no longer in force (enroll with POST /secneuron/v1/enroll)");
        ({ manifest, userKey } = bound);
      } else {
        if (creds.kind !== "token") throw new ProxyError("AUTH_MISSING", "an API token is required (Authorization: Bearer <token> or X-Api-Key)");
        const auth = await deps.authenticate(creds.token, now());
        if (!auth.ok) throw new ProxyError("AUTH_INVALID", auth.reason === "expired" ? "this key has expired" : auth.reason === "not_yet_valid" ? "this key is not valid yet" : "invalid API token");
        manifest = auth.manifest;
        userKey = auth.userKey as UserKey;
      }
      const caller = callerOf(manifest, userKey);
      p.caller = caller;
      const role = manifest.attributes.includes("role:admin") ? "admin" : "user";
      const denied = checkRouteAccess(m, role);
      if (denied) return deny(sreq, res, flavor, denied.error);
      if (route.access === "admin") {
        // Admin operations (pull, create, copy, delete, blobs) act on the host's own store: only a
        // host with one (Ollama) can take them, forwarded as they are to the admin.
        const admin = deps.host.adminTarget?.();
        if (!admin) throw new AccessError("ROUTE_NOT_SUPPORTED", 501, `${route.id} is not supported by the ${deps.host.kind} host behind this sidecar`);
        if (route.body === "json") {
          const body = await readBody(req, MAX_BODY_BYTES);
          const ex = extractModels(m, body);
          if (isDenial(ex)) return deny(sreq, res, flavor, ex.error);
          p.model = ex.model;
          p.body = body;
        }
        p.resolved = { target: admin, variantName: "", nodes: [], tasks: null, release() {} };
        p.model ??= "";
        return void proxy(req, res, next);
      }
      const registry = deps.registry();
      const visibleModels = () => registry.list().filter((sm) => inScope(caller, sm));
      // Listings: built from what the caller may use, never from the host's own lists.
      if (route.id === "ollama.tags" && req.method === "HEAD") {
        res.status(200).end();
        return audit(sreq, res, "allow", "listing");
      }
      if (route.listing === "ollama-tags") {
        res.json({ models: visibleModels().map(tagsEntry) });
        return audit(sreq, res, "allow", "listing");
      }
      if (route.listing === "openai-models") {
        const created = Math.floor(now() / 1000);
        res.json({ object: "list", data: visibleModels().map((sm) => ({ id: sm.name, object: "model", created, owned_by: "secneuron" })) });
        return audit(sreq, res, "allow", "listing");
      }
      if (route.listing === "ollama-ps") {
        // What runs for this caller: their variant of each visible model, if the host has it.
        const active = deps.resolver.activeNames();
        const models = [];
        for (const sm of visibleModels()) {
          const nodes = sm.sealed ? grantedNodes(sm.model, caller.attributes, null).map((k) => sm.model.info.nodes[k]!.id) : [];
          if (active.has(variantName(sm, nodes))) models.push({ ...tagsEntry(sm), expires_at: new Date(now() + 3600_000).toISOString(), size_vram: 0 });
        }
        res.json({ models });
        return audit(sreq, res, "allow", "listing");
      }
      // A request on one model.
      const body = route.body === "json" && req.method !== "GET" && req.method !== "HEAD" ? await readBody(req, MAX_BODY_BYTES) : undefined;
      const ex = extractModels(m, body);
      if (isDenial(ex)) return deny(sreq, res, flavor, ex.error);
      if (!ex.model) throw new ProxyError("MODEL_MISSING", "no model named");
      p.model = ex.model;
      const served = registry.get(ex.model);
      if (!served || !inScope(caller, served)) throw new AccessError("MODEL_NOT_FOUND", 404, `model '${ex.model}' not found`);
      if (route.id === "openai.model") {
        res.json({ id: ex.model, object: "model", created: Math.floor(served.modifiedAt.getTime() / 1000), owned_by: "secneuron" });
        return audit(sreq, res, "allow", "model");
      }
      const fwd = deps.host.forwardedRoutes;
      if (fwd && !fwd.includes(`${route.method} ${route.path}`)) {
        throw new AccessError("ROUTE_NOT_SUPPORTED", 501, `${route.id} is not supported by the ${deps.host.kind} host behind this sidecar (it serves: ${fwd.join(", ")})`);
      }
      const policy = applyLoadingPolicy(ex, { admin: role === "admin" });
      if (isDenial(policy)) return deny(sreq, res, flavor, policy.error);
      const tasks = taskHeader(req);
      p.resolved = await deps.resolver.resolve(caller, served, tasks);
      if (ex.body) {
        p.body = rewriteExtracted(ex, policy.body!, p.resolved.target.modelName);
        if (deps.logPrompts) p.prompt = ex.body.prompt ?? ex.body.messages ?? ex.body.input;
      }
      return void proxy(req, res, next);
    } catch (e) {
      p.resolved?.release();
      return deny(sreq, res, flavor, e);
    }
  });
  return app;
}

