/**
 * The audit log: one JSON line per decision (allowed or denied), appended to a file. Prompt text
 * is never written unless the operator opts in. Lines of one event-loop turn go out in one write
 * through one append stream (close() flushes what is pending); a failing
 * log never breaks a request, but it is counted and reported in /healthz.
 */
import { createWriteStream, type WriteStream } from "node:fs";

export interface AuditEvent {
  /** ISO time the decision was made. */
  time: string;
  /** Request id (also returned in the X-Request-Id response header). */
  id: string;
  subject: string | null;
  manifest: string | null;
  method: string;
  route: string;
  /** The model the caller named. */
  model: string | null;
  /** The variant actually dispatched (null when denied before dispatch). */
  variant: string | null;
  tasks: string[] | null;
  decision: "allow" | "deny" | "error";
  reason: string;
  status: number;
  latencyMs: number;
  /** Only with --log-prompts. */
  prompt?: unknown;
}

export class AuditLog {
  private stream: WriteStream | undefined;
  /** Lines of this turn of the event loop: one write per turn instead of one per request. */
  private pending: string[] = [];
  private flushScheduled = false;
  errors = 0;
  written = 0;

  constructor(readonly path: string | undefined, private readonly onError?: (e: Error) => void) {
    if (path) {
      this.stream = createWriteStream(path, { flags: "a", mode: 0o600 });
      this.stream.on("error", (e) => {
        this.errors++;
        this.onError?.(e);
      });
    }
  }

  write(event: AuditEvent): void {
    if (!this.stream) return;
    try {
      this.pending.push(`${JSON.stringify(event)}\n`);
      this.written++;
    } catch (e) {
      this.errors++;
      this.onError?.(e as Error);
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (!this.pending.length || !this.stream) return;
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join("");
    this.pending = [];
    this.stream.write(text);
  }

  close(): Promise<void> {
    this.flush();
    const s = this.stream;
    this.stream = undefined;
    return new Promise((resolve) => (s ? s.end(resolve) : resolve()));
  }
}
