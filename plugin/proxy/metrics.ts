/** Prometheus metrics of the sidecar (prom-client, own registry: no global state). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface SidecarMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"route" | "decision" | "status">;
  readonly latency: Histogram<"route" | "decision">;
  readonly variants: Gauge;
  readonly variantBytes: Gauge;
  readonly manifests: Gauge<"state">;
  readonly variantBuilds: Counter;
}

export function createMetrics(): SidecarMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "secneuron_" });
  return {
    registry,
    requests: new Counter({ name: "secneuron_requests_total", help: "Requests by route class, decision and status", labelNames: ["route", "decision", "status"], registers: [registry] }),
    latency: new Histogram({ name: "secneuron_request_seconds", help: "Time from request to response end", labelNames: ["route", "decision"], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers: [registry] }),
    variants: new Gauge({ name: "secneuron_variants", help: "Variants cached on tmpfs", registers: [registry] }),
    variantBytes: new Gauge({ name: "secneuron_variant_bytes", help: "Bytes of cached variants", registers: [registry] }),
    manifests: new Gauge({ name: "secneuron_manifests", help: "Manifest files by state", labelNames: ["state"], registers: [registry] }),
    variantBuilds: new Counter({ name: "secneuron_variant_builds_total", help: "Variants built", registers: [registry] }),
  };
}
