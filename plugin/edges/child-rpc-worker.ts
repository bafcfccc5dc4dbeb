/**
 * Worker side of child-rpc.ts: a worker only runs under fork() with an IPC channel, exits when
 * its parent goes away, and answers every request exactly once, strictly in order.
 */

export interface ServeOptions {
  /** Pass a string `code` of a thrown error on to the parent. */
  readonly errorCode?: boolean;
}

/**
 * Serve requests with `handle` (sync or async); `worker` names this worker if it was not forked.
 * Returns the typed send for the ready message and events.
 */
export function serveRequests<Req extends { readonly id: number }, Msg>(worker: string, handle: (req: Req) => unknown, opts: ServeOptions = {}): (m: Msg) => void {
  if (typeof process.send !== "function") {
    console.error(`secneuron ${worker}: must be started with an IPC channel (child_process.fork)`);
    process.exit(2);
  }
  const send = (m: unknown): void => {
    process.send!(m);
  };
  // The parent going away (crash, kill) must not leave an orphan holding a model.
  process.on("disconnect", () => process.exit(0));
  let queue: Promise<void> = Promise.resolve();
  process.on("message", (raw: unknown) => {
    const req = raw as Req;
    queue = queue.then(async () => {
      try {
        const result = await handle(req);
        send({ type: "response", id: req.id, ok: true, result });
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        const code = (err as { code?: unknown }).code;
        send({ type: "response", id: req.id, ok: false, error: { name: err.name, message: err.message, ...(opts.errorCode && typeof code === "string" ? { code } : {}) } });
      }
    });
  });
  return send;
}
