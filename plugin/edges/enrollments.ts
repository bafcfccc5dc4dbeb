/**
 * Enrolled Ollama client keys: unmodified `ollama` CLI users (OLLAMA_AUTH=1) sign each request
 * with ~/.ollama/id_ed25519 instead of sending a token. A key holder enrolls the public key once
 * with their API token (POST /secneuron/v1/enroll); the sidecar unwraps the user's CP-ABE key with
 * the token then and binds it to the public key. Bindings live in memory only (enroll again after
 * a restart), and every use re-checks that the manifest is still in force and in its validity
 * window: removing or replacing the manifest ends the binding.
 */
import type { UserKey } from "../core/abe/fame.js";
import type { KeyManifest } from "../core/manifest/manifest.js";

export interface Enrollment {
  readonly manifestId: string;
  readonly userKey: UserKey;
  readonly enrolledAt: number;
}

export class Enrollments {
  private readonly byKey = new Map<string, Enrollment>();

  /** Bind an Ollama public key (its base64 SSH-wire text) to a manifest. Replaces an earlier binding. */
  enroll(publicKeyText: string, manifest: KeyManifest, userKey: UserKey, now: number): void {
    this.byKey.set(publicKeyText, { manifestId: manifest.id, userKey, enrolledAt: now });
  }

  /**
   * The binding for a key, if its manifest is still active (`active(id)` returns the manifest in
   * force under that id) and valid at `now`.
   */
  resolve(publicKeyText: string, active: (id: string) => KeyManifest | undefined, now: number): { manifest: KeyManifest; userKey: UserKey } | undefined {
    const e = this.byKey.get(publicKeyText);
    if (!e) return undefined;
    const m = active(e.manifestId);
    if (!m || now < Date.parse(m.notBefore) || (m.expires !== undefined && now >= Date.parse(m.expires))) {
      if (!m) this.byKey.delete(publicKeyText);
      return undefined;
    }
    return { manifest: m, userKey: e.userKey };
  }

  /** Drop every binding of a manifest (it was revoked). */
  forgetManifest(manifestId: string): number {
    let n = 0;
    for (const [k, e] of this.byKey) {
      if (e.manifestId === manifestId) {
        this.byKey.delete(k);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.byKey.size;
  }
}
