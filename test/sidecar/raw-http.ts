/** Raw HTTP for tests: exact paths and headers as written (no URL normalisation, repeated headers). */
import { request } from "node:http";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function rawRequest(base: string, method: string, path: string, headers: Array<[string, string]> = [], body?: string | Buffer): Promise<RawResponse> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    // A raw header array gets no automatic Host header; HTTP/1.1 servers require one.
    const flat: string[] = ["host", u.host];
    for (const [k, v] of headers) flat.push(k, v);
    if (body !== undefined && !headers.some(([k]) => k.toLowerCase() === "content-length" || k.toLowerCase() === "transfer-encoding")) {
      flat.push("content-length", String(Buffer.byteLength(body)));
    }
    const req = request({ host: u.hostname, port: u.port, method, path, headers: flat as unknown as Record<string, string>, setHost: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}
