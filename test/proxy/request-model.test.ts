import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { findDuplicateKey, goFoldKey } from "../../plugin/proxy/json-scan.js";
import { isValidModelName, normalizeModelName, sameModel } from "../../plugin/proxy/model-name.js";
import {
  LOADING_FIELD_POLICY,
  applyLoadingPolicy,
  extractModels,
  parseGoDuration,
  rewriteExtracted,
  rewriteRequestModel,
  type ExtractedRequest,
} from "../../plugin/proxy/request-model.js";
import { ROUTES, matchRoute, type RouteMatch } from "../../plugin/proxy/routes.js";

function extract(method: string, url: string, body: string): ExtractedRequest {
  const m = matchRoute(method, url);
  if (m.kind !== "route") throw new Error(`unexpected denial ${m.error.code}`);
  const x = extractModels(m as RouteMatch, Buffer.from(body));
  if (x.kind !== "request") throw new Error(`unexpected denial ${x.error.code}: ${x.error.message}`);
  return x;
}

describe("model names", () => {
  it("normalises :latest only", () => {
    expect(normalizeModelName("llama3")).toBe("llama3:latest");
    expect(normalizeModelName("llama3:8b")).toBe("llama3:8b");
    expect(normalizeModelName("localhost:5000/me/m")).toBe("localhost:5000/me/m:latest");
    expect(sameModel("llama3", "llama3:latest")).toBe(true);
    expect(sameModel("llama3", "Llama3")).toBe(false);
    expect(sameModel("llama3", "library/llama3")).toBe(false);
  });
  it("rejects look-alikes", () => {
    for (const bad of ["", "a b", "llama3\u200b", "ｌlama", "a//b", "a/", "/a", "a:", ".a", "a:b:c", "a@b", "a%20", "x".repeat(257)]) {
      expect(isValidModelName(bad), bad).toBe(false);
    }
    for (const good of ["a", "llama3:8b-q4_K_M", "hf.co/user/repo:Q4", "me/m", "host.io:443/ns/m:t"]) {
      expect(isValidModelName(good), good).toBe(true);
    }
  });
});

describe("duplicate-key scanner", () => {
  it("folds like Go's encoding/json", () => {
    expect(goFoldKey("Model")).toBe(goFoldKey("model"));
    expect(goFoldKey("\u212Aeep_alive")).toBe(goFoldKey("keep_alive"));
    expect(goFoldKey("\u017Ftream")).toBe(goFoldKey("stream"));
    expect(goFoldKey("model")).not.toBe(goFoldKey("mode1"));
  });
  it("finds collisions at any depth and reports where", () => {
    expect(findDuplicateKey('{"a":{"b":[{"c":1,"C":2}]}}')).toEqual({ path: "$.a.b[0]", first: "c", second: "C" });
    expect(findDuplicateKey('{"a":"{\\"a\\":1,\\"a\\":2}","b":["a","a"]}')).toBeNull();
    expect(findDuplicateKey('[{"x":1},{"x":2}]')).toBeNull();
    expect(findDuplicateKey('{"a":1,"b":{"a":2}}')).toBeNull();
  });
  it("agrees with a reference on random objects (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        // JSON.stringify never writes duplicate keys; keys that fold equal are the only hits
        const text = JSON.stringify(v);
        const hit = findDuplicateKey(text);
        const ref = (x: unknown): boolean => {
          if (Array.isArray(x)) return x.some(ref);
          if (x && typeof x === "object") {
            const keys = Object.keys(x).map(goFoldKey);
            return new Set(keys).size !== keys.length || Object.values(x).some(ref);
          }
          return false;
        };
        return (hit !== null) === ref(v);
      }),
      { numRuns: 300 },
    );
  });
});

describe("loading-field policy", () => {
  const body = (extra: string) => `{"model":"llama3"${extra}}`;
  const apply = (extra: string, admin = false) => applyLoadingPolicy(extract("POST", "/api/generate", body(extra)), { admin });

  it("documents every field from NOTES (keep_alive, options.*, template, system, raw)", () => {
    for (const f of ["keep_alive", "options.use_mmap", "options.num_gpu", "options.num_ctx", "template", "system", "raw"]) {
      expect(LOADING_FIELD_POLICY[f], f).toBeDefined();
    }
  });
  it("denies use_mmap:false for users, allows it for admins", () => {
    const r = apply(',"options":{"use_mmap":false}');
    expect(r.kind).toBe("deny");
    if (r.kind === "deny") expect([r.error.code, r.error.status]).toEqual(["LOADING_FIELD_DENIED", 403]);
    expect(apply(',"options":{"use_mmap":false}', true).kind).toBe("request");
    expect(apply(',"options":{"use_mmap":true}').kind).toBe("request");
  });
  it("strips GPU placement and mlock, keeps sampling options", () => {
    const r = apply(',"options":{"num_gpu":99,"main_gpu":1,"use_mlock":true,"temperature":0.2}');
    if (r.kind !== "request") throw new Error("denied");
    expect(r.body!["options"]).toEqual({ temperature: 0.2 });
    expect(r.changes.map((c) => `${c.action}:${c.field}`).sort()).toEqual(["strip:options.main_gpu", "strip:options.num_gpu", "strip:options.use_mlock"]);
  });
  it("caps keep_alive (negative = forever) and num_ctx", () => {
    for (const ka of ['"-1"', "-1", '"24h"', "99999", '"1h30m"']) {
      const r = apply(`,"keep_alive":${ka}`);
      if (r.kind !== "request") throw new Error("denied");
      expect(r.body!["keep_alive"], ka).toBe(1800);
    }
    for (const ka of ['"5m"', "0", '"0"', "60", "null"]) {
      const r = apply(`,"keep_alive":${ka}`);
      if (r.kind !== "request") throw new Error("denied");
      expect(r.changes, ka).toEqual([]);
    }
    const bad = apply(',"keep_alive":"5 minutes"');
    expect(bad.kind === "deny" && bad.error.code).toBe("BODY_FIELD_TYPE");
    const r = apply(',"options":{"num_ctx":1000000}');
    if (r.kind !== "request") throw new Error("denied");
    expect(r.body!["options"]).toEqual({ num_ctx: 32768 });
    const admin = apply(',"keep_alive":-1,"options":{"num_ctx":1000000,"num_gpu":3}', true);
    if (admin.kind !== "request") throw new Error("denied");
    expect(admin.changes).toEqual([]);
  });
  it("allows template, system and raw unchanged", () => {
    const r = apply(',"template":"{{ .Prompt }}","system":"be brief","raw":true');
    if (r.kind !== "request") throw new Error("denied");
    expect(r.changes).toEqual([]);
    expect(r.body).toMatchObject({ template: "{{ .Prompt }}", system: "be brief", raw: true });
  });
  it("parses Go durations", () => {
    expect(parseGoDuration("1h30m")).toBe(5400);
    expect(parseGoDuration("1.5s")).toBe(1.5);
    expect(parseGoDuration("-5m")).toBe(-300);
    expect(parseGoDuration("300")).toBeUndefined();
    expect(parseGoDuration("5 m")).toBeUndefined();
  });
});

describe("request rewrite", () => {
  it("rewrites every field naming the model, leaves other models", () => {
    const x = extract("POST", "/api/show", '{"model":"llama3","name":"llama3:latest","verbose":true}');
    const out = JSON.parse(rewriteExtracted(x, x.body!, "sn-abc:latest").toString());
    expect(out).toEqual({ model: "sn-abc:latest", name: "sn-abc:latest", verbose: true });
    const copy = JSON.parse(rewriteRequestModel({ source: "a", destination: "b" }, "a", "v1").toString());
    expect(copy).toEqual({ source: "v1", destination: "b" });
  });
  it("round-trips: extracting the rewritten body names only the variant", () => {
    for (const r of ROUTES.filter((x) => x.body === "json" && x.modelFields.includes("model"))) {
      const url = r.path;
      const x = extract(r.method, url, '{"model":"llama3","messages":[],"stream":false}');
      const bytes = rewriteExtracted(x, x.body!, "sn-v:latest");
      const again = extractModels(x.match, bytes);
      if (again.kind !== "request") throw new Error("denied after rewrite");
      expect(again.refs.filter((f) => f.role === "target").map((f) => f.name)).toEqual(["sn-v:latest"]);
    }
  });
  it("refuses an invalid target name", () => {
    expect(() => rewriteRequestModel({ model: "a" }, "a", "bad name")).toThrow(/invalid model name/);
  });
});
