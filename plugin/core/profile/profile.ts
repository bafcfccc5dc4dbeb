/**
 * Neuron profiles (format `secneuron-profile` v1, spec in docs/profile-format.md): for each task,
 * layer and FFN neuron (and, optionally, attention head group), how much it matters to the task. Produced by `secneuron profile`
 * from llama.cpp activations, or written by hand for fixtures whose skill neurons are known.
 * Parsing is strict: every error names the JSON path.
 */
import { SecNeuronError } from "../../errors.js";

export const PROFILE_FORMAT = "secneuron-profile";
export const PROFILE_VERSION = 1;

export interface LayerStats {
  readonly layer: number;
  /** Per neuron: mean |activation| over the task's tokens (the importance). */
  readonly importance: readonly number[];
  /** Per neuron: mean activation^2 (optional). */
  readonly meanSquare?: readonly number[];
  /**
   * Per attention head group g (0..model.headGroups-1, optional): mean |a| of the group's
   * attention output (the input of attn_output restricted to the group's features).
   */
  readonly heads?: readonly number[];
}

export interface TaskProfile {
  readonly tokens: number;
  readonly layers: readonly LayerStats[];
}

export interface Profile {
  readonly format: typeof PROFILE_FORMAT;
  readonly version: typeof PROFILE_VERSION;
  readonly model: {
    /** SHA-256 (hex) of the plaintext model file the profile was taken on, if known. */
    readonly sha256?: string;
    readonly architecture: string;
    readonly blockCount: number;
    readonly feedForwardLength: number;
    /** Attention head groups per layer (n_head_kv); required when any layer has `heads`. */
    readonly headGroups?: number;
  };
  /** Free-form provenance: tool, corpus files, date. */
  readonly source?: Readonly<Record<string, string>>;
  readonly tasks: Readonly<Record<string, TaskProfile>>;
}

export class ProfileError extends SecNeuronError {}

const TASK_NAME = /^[a-z][a-z0-9_-]{0,63}$/;

function fail(path: string, message: string): never {
  throw new ProfileError("PROFILE_INVALID", `${path}: ${message}`, { path });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Record<string, unknown>, path: string, allowed: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${path}.${k}`, "unknown field");
}

function uint(v: unknown, path: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) fail(path, `expected an integer in 0..${max}, got ${JSON.stringify(v)}`);
  return v;
}

function numbers(v: unknown, path: string, length: number, unit = "neuron"): number[] {
  if (!Array.isArray(v)) fail(path, "expected an array of numbers");
  if (v.length !== length) fail(path, `expected ${length} values (one per ${unit}), got ${v.length}`);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0) fail(`${path}[${i}]`, `expected a finite number >= 0, got ${JSON.stringify(x)}`);
  }
  return v as number[];
}

export function isValidTaskName(name: string): boolean {
  return TASK_NAME.test(name);
}

/** Validate a parsed JSON value as a v1 profile. */
export function parseProfile(json: unknown): Profile {
  if (!isObject(json)) fail("$", "expected an object");
  onlyKeys(json, "$", ["format", "version", "model", "source", "tasks"]);
  if (json.format !== PROFILE_FORMAT) fail("$.format", `expected "${PROFILE_FORMAT}"`);
  if (json.version !== PROFILE_VERSION) fail("$.version", `unsupported version ${JSON.stringify(json.version)} (supported: ${PROFILE_VERSION})`);
  const m = json.model;
  if (!isObject(m)) fail("$.model", "expected an object");
  onlyKeys(m, "$.model", ["sha256", "architecture", "blockCount", "feedForwardLength", "headGroups"]);
  if (m.sha256 !== undefined && (typeof m.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(m.sha256))) fail("$.model.sha256", "expected 64 lowercase hex digits");
  if (typeof m.architecture !== "string" || m.architecture.length === 0) fail("$.model.architecture", "expected a string");
  const blockCount = uint(m.blockCount, "$.model.blockCount", 1024);
  const nFf = uint(m.feedForwardLength, "$.model.feedForwardLength", 1 << 20);
  const headGroups = m.headGroups === undefined ? undefined : uint(m.headGroups, "$.model.headGroups", 4096);
  if (headGroups === 0) fail("$.model.headGroups", "expected an integer in 1..4096, got 0");
  if (json.source !== undefined) {
    if (!isObject(json.source)) fail("$.source", "expected an object of strings");
    for (const [k, v] of Object.entries(json.source)) if (typeof v !== "string") fail(`$.source.${k}`, "expected a string");
  }
  if (!isObject(json.tasks)) fail("$.tasks", "expected an object");
  const names = Object.keys(json.tasks);
  if (names.length === 0) fail("$.tasks", "no tasks");
  const tasks: Record<string, TaskProfile> = {};
  for (const name of names) {
    const p = `$.tasks.${name}`;
    if (!isValidTaskName(name)) fail(p, "task names are 1-64 of a-z, 0-9, _ and -, starting with a letter");
    const t = json.tasks[name];
    if (!isObject(t)) fail(p, "expected an object");
    onlyKeys(t, p, ["tokens", "layers"]);
    const tokens = uint(t.tokens, `${p}.tokens`);
    if (!Array.isArray(t.layers)) fail(`${p}.layers`, "expected an array");
    const seen = new Set<number>();
    const layers = t.layers.map((l: unknown, i: number): LayerStats => {
      const lp = `${p}.layers[${i}]`;
      if (!isObject(l)) fail(lp, "expected an object");
      onlyKeys(l, lp, ["layer", "importance", "meanSquare", "heads"]);
      const layer = uint(l.layer, `${lp}.layer`, blockCount - 1);
      if (seen.has(layer)) fail(`${lp}.layer`, `layer ${layer} appears twice`);
      seen.add(layer);
      const importance = numbers(l.importance, `${lp}.importance`, nFf);
      const meanSquare = l.meanSquare === undefined ? undefined : numbers(l.meanSquare, `${lp}.meanSquare`, nFf);
      let heads: number[] | undefined;
      if (l.heads !== undefined) {
        if (headGroups === undefined) fail(`${lp}.heads`, "head importances need $.model.headGroups");
        heads = numbers(l.heads, `${lp}.heads`, headGroups, "head group");
      }
      return { layer, importance, ...(meanSquare ? { meanSquare } : {}), ...(heads ? { heads } : {}) };
    });
    tasks[name] = { tokens, layers };
  }
  return {
    format: PROFILE_FORMAT,
    version: PROFILE_VERSION,
    model: { ...(m.sha256 ? { sha256: m.sha256 as string } : {}), architecture: m.architecture, blockCount, feedForwardLength: nFf, ...(headGroups !== undefined ? { headGroups } : {}) },
    ...(json.source ? { source: json.source as Record<string, string> } : {}),
    tasks,
  };
}

/** Parse profile text (JSON) with errors that name the position. */
export function parseProfileText(text: string): Profile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ProfileError("PROFILE_NOT_JSON", `profile is not valid JSON: ${(e as Error).message}`);
  }
  return parseProfile(json);
}
