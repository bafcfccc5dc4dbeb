import { describe, expect, it } from "vitest";
import { ed25519 } from "@noble/curves/ed25519.js";
import {
  SignatureReplayCache,
  decodeOllamaPublicKey,
  findTokenHash,
  hashToken,
  ollamaChallenge,
  ollamaPublicKeyText,
  parseCredentials,
  tokenHashEquals,
  verifyOllamaSignature,
  type Credentials,
} from "../../plugin/proxy/auth.js";
import { apiError } from "../../plugin/proxy/api-error.js";
import type { HeaderBag } from "../../plugin/proxy/routes.js";

const SECRET = new Uint8Array(32).fill(7);
const PUB = ed25519.getPublicKey(SECRET);
const NOW = 1_700_000_000;

/** What the ollama client sends with OLLAMA_AUTH=1 (api/client.go, auth/auth.go). */
function ollamaAuthHeader(method: string, path: string, ts: number, secret = SECRET): string {
  const sig = ed25519.sign(new TextEncoder().encode(ollamaChallenge(method, path, String(ts))), secret);
  return `${ollamaPublicKeyText(ed25519.getPublicKey(secret))}:${Buffer.from(sig).toString("base64")}`;
}

function creds(h: HeaderBag): Credentials {
  const c = parseCredentials(h);
  if (c.kind === "deny") throw new Error(`denied: ${c.error.code}`);
  return c;
}

function denyCode(h: HeaderBag): string {
  const c = parseCredentials(h);
  return c.kind === "deny" ? `${c.error.code}/${c.error.status}` : "ok";
}

describe("credential parsing", () => {
  it("reads Bearer and X-Api-Key", () => {
    expect(creds({ authorization: "Bearer abc.DEF-123_~+/=" })).toEqual({ kind: "token", token: "abc.DEF-123_~+/=", source: "bearer" });
    expect(creds({ authorization: "bearer   tok" })).toEqual({ kind: "token", token: "tok", source: "bearer" });
    expect(creds({ "x-api-key": ["tok"] })).toEqual({ kind: "token", token: "tok", source: "x-api-key" });
    expect(creds({ authorization: ["Bearer tok"], "x-api-key": ["tok"] })).toMatchObject({ kind: "token", token: "tok" });
    expect(creds({})).toEqual({ kind: "none" });
  });
  it("rejects duplicates, disagreement and malformed values", () => {
    expect(denyCode({ authorization: ["Bearer a", "Bearer b"] })).toBe("AUTH_CONFLICT/400");
    expect(denyCode({ authorization: ["Bearer a", "Bearer a"] })).toBe("AUTH_CONFLICT/400");
    expect(denyCode({ "x-api-key": ["a", "b"] })).toBe("AUTH_CONFLICT/400");
    expect(denyCode({ authorization: "Bearer a", "x-api-key": "b" })).toBe("AUTH_CONFLICT/400");
    expect(denyCode({ "x-api-key": "a, b" })).toBe("AUTH_MALFORMED/401"); // Node's join of two headers
    expect(denyCode({ authorization: "Basic dXNlcjpwYXNz" })).toBe("AUTH_MALFORMED/401");
    expect(denyCode({ authorization: "Bearer " })).toBe("AUTH_MALFORMED/401");
    expect(denyCode({ authorization: "Bearer a b" })).toBe("AUTH_MALFORMED/401");
    expect(denyCode({ authorization: `Bearer ${"a".repeat(5000)}` })).toBe("AUTH_MALFORMED/401");
    expect(denyCode({ authorization: "Bearer tok\u200b" })).toBe("AUTH_MALFORMED/401");
    expect(denyCode({ authorization: "AAAA:BBBB" })).toBe("AUTH_MALFORMED/401");
    const sig = ollamaAuthHeader("POST", "/api/chat", NOW);
    expect(denyCode({ authorization: sig, "x-api-key": "tok" })).toBe("AUTH_CONFLICT/400");
  });
  it("parses an Ollama signature header (SSH wire key or raw key)", () => {
    const h = ollamaAuthHeader("POST", "/api/chat", NOW);
    const c = creds({ authorization: h });
    expect(c.kind).toBe("ollama-signature");
    if (c.kind !== "ollama-signature") return;
    expect(c.publicKey).toEqual(PUB);
    expect(c.publicKeyText.startsWith("AAAAC3NzaC1lZDI1NTE5AAAAI")).toBe(true); // "ssh-ed25519" wire prefix
    const raw = `${Buffer.from(PUB).toString("base64")}:${h.split(":")[1]}`;
    expect(creds({ authorization: raw })).toMatchObject({ kind: "ollama-signature", publicKeyText: c.publicKeyText });
    expect(decodeOllamaPublicKey("AAAAB3NzaC1yc2EAAAADAQAB")).toBeUndefined(); // ssh-rsa
  });
});

describe("token hashes", () => {
  it("compares in constant time and finds the right id", () => {
    const a = hashToken("alpha");
    expect(tokenHashEquals(a, hashToken("alpha"))).toBe(true);
    expect(tokenHashEquals(a, hashToken("beta"))).toBe(false);
    expect(tokenHashEquals(a, a.subarray(0, 31))).toBe(false);
    const table: [string, Uint8Array][] = [["k1", hashToken("beta")], ["k2", a], ["k3", a]];
    expect(findTokenHash("alpha", table)).toBe("k2");
    expect(findTokenHash("gamma", table)).toBeUndefined();
  });
});

describe("Ollama signature verification", () => {
  const check = (h: string, method: string, path: string, query: string, now = NOW, replay?: SignatureReplayCache) => {
    const c = creds({ authorization: h });
    if (c.kind !== "ollama-signature") throw new Error("not a signature");
    const r = verifyOllamaSignature(c, { method, path, query: new URLSearchParams(query), nowSeconds: now, replay });
    return r.kind === "ok" ? "ok" : `${r.error.code}/${r.error.status}`;
  };
  it("accepts a fresh signature over METHOD,path?ts=", () => {
    const h = ollamaAuthHeader("POST", "/api/chat", NOW);
    expect(check(h, "POST", "/api/chat", `ts=${NOW}`)).toBe("ok");
    expect(check(h, "POST", "/api/chat", `ts=${NOW}`, NOW + 120)).toBe("ok");
  });
  it("rejects stale, future, wrong path/method, tampered, missing or repeated ts", () => {
    const h = ollamaAuthHeader("POST", "/api/chat", NOW);
    expect(check(h, "POST", "/api/chat", `ts=${NOW}`, NOW + 121)).toBe("AUTH_STALE/401");
    expect(check(h, "POST", "/api/chat", `ts=${NOW}`, NOW - 121)).toBe("AUTH_STALE/401");
    expect(check(h, "POST", "/api/generate", `ts=${NOW}`)).toBe("AUTH_INVALID/401");
    expect(check(h, "GET", "/api/chat", `ts=${NOW}`)).toBe("AUTH_INVALID/401");
    expect(check(h, "POST", "/api/chat", `ts=${NOW + 1}`)).toBe("AUTH_INVALID/401");
    expect(check(h, "POST", "/api/chat", "")).toBe("AUTH_MALFORMED/401");
    expect(check(h, "POST", "/api/chat", `ts=${NOW}&ts=${NOW}`)).toBe("AUTH_MALFORMED/401");
    expect(check(h, "POST", "/api/chat", "ts=1e9")).toBe("AUTH_MALFORMED/401");
    const other = ollamaAuthHeader("POST", "/api/chat", NOW, new Uint8Array(32).fill(9));
    const forged = `${h.split(":")[0]}:${other.split(":")[1]}`;
    expect(check(forged, "POST", "/api/chat", `ts=${NOW}`)).toBe("AUTH_INVALID/401");
  });
  it("refuses a replay inside the window", () => {
    const cache = new SignatureReplayCache(120, 10);
    const h = ollamaAuthHeader("POST", "/api/chat", NOW);
    expect(check(h, "POST", "/api/chat", `ts=${NOW}`, NOW, cache)).toBe("ok");
    expect(check(h, "POST", "/api/chat", `ts=${NOW}`, NOW + 5, cache)).toBe("AUTH_REPLAY/401");
  });
  it("replay cache forgets expired entries and fails closed when full", () => {
    const cache = new SignatureReplayCache(10, 2);
    expect(cache.remember("a", 100, 100)).toBe(true);
    expect(cache.remember("b", 100, 100)).toBe(true);
    expect(cache.remember("c", 100, 100)).toBe(false); // full of live entries
    expect(cache.remember("c", 120, 120)).toBe(true); // a and b expired
    expect(cache.remember("a", 120, 120)).toBe(true);
  });
});

describe("apiError shapes", () => {
  it("ollama, openai, anthropic", () => {
    expect(apiError("ollama", 403, "no").body).toEqual({ error: "no" });
    expect(apiError({ flavor: "openai" }, 401, "who", "auth_missing").body).toEqual({
      error: { message: "who", type: "authentication_error", param: null, code: "auth_missing" },
    });
    expect(apiError("anthropic", 413, "big").body).toEqual({ type: "error", error: { type: "request_too_large", message: "big" } });
    expect(apiError("anthropic", 403, "no").body).toEqual({ type: "error", error: { type: "permission_error", message: "no" } });
  });
});
