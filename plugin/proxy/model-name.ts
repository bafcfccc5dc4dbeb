/**
 * Model names: one validation rule and one comparison rule, used for every route.
 *
 * - A name is `[host[:port]/][namespace/]model[:tag]`, ASCII only: each part starts with
 *   `[A-Za-z0-9_]` and continues with `[A-Za-z0-9_.-]`; at most 256 bytes. Anything else
 *   (non-ASCII, zero-width characters, fullwidth letters, NFKC look-alikes, `%`, `@digest`,
 *   spaces, empty parts, dot segments) is rejected with MODEL_INVALID; it is never "cleaned up".
 * - Comparison: exact byte equality after one normalisation: a name whose last part has no
 *   `:tag` gets `:latest`. `llama3` == `llama3:latest`; `Llama3`, `library/llama3` and
 *   `registry.ollama.ai/library/llama3` are DIFFERENT models (fail closed: grant them explicitly).
 * - The proxy always rewrites the request to the name it decided on, so what the upstream does
 *   with case or registry prefixes never matters.
 */

import { ProxyError } from "./errors.js";

export const MAX_MODEL_NAME_BYTES = 256;

const PART = "[A-Za-z0-9_][A-Za-z0-9_.-]*";
const MODEL_NAME_RE = new RegExp(`^(?:${PART}(?::[0-9]{1,5})?/){0,2}${PART}(?::${PART})?$`);

/** True when `name` is a syntactically valid model name (see module doc). */
export function isValidModelName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_MODEL_NAME_BYTES && MODEL_NAME_RE.test(name);
}

/** Throws MODEL_INVALID unless `name` is valid; `where` names the field (`body.model`). */
export function assertModelName(name: string, where: string): void {
  if (!isValidModelName(name)) {
    throw new ProxyError(
      "MODEL_INVALID",
      `${where}: invalid model name ${JSON.stringify(name.slice(0, 80))}: expected ASCII ` +
        `[host/][namespace/]model[:tag] (letters, digits, '_', '.', '-'), at most ${MAX_MODEL_NAME_BYTES} bytes`,
      { where },
    );
  }
}

/** `name` with `:latest` appended when its last part has no tag. Does not validate. */
export function normalizeModelName(name: string): string {
  const last = name.slice(name.lastIndexOf("/") + 1);
  return last.includes(":") ? name : `${name}:latest`;
}

/** Exact comparison after `:latest` normalisation. */
export function sameModel(a: string, b: string): boolean {
  return normalizeModelName(a) === normalizeModelName(b);
}
