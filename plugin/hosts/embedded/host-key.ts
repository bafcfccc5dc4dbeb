/** The embedded host's per-process key: front server and child accept only requests that carry it. */
import type { IncomingMessage } from "node:http";
import { timingSafeEqual } from "node:crypto";

/** Constant-time check of `Authorization: Bearer <key>`. */
export function hasKey(req: IncomingMessage, key: string): boolean {
  const got = Buffer.from(String(req.headers.authorization ?? ""));
  const want = Buffer.from(`Bearer ${key}`);
  return got.length === want.length && timingSafeEqual(got, want);
}
