// The whole BENCHMARKS.md, rendered from one results file (pure).
import { listedPeers, renderControlPlane, renderMetricTable, renderTargets, TABLES } from "./report.js";
import type { BenchResults } from "./results.js";
import { renderSoakSection, type SoakResult } from "./soak-report.js";

export const CHART_FILES = {
  latency: "bench/results/latency.svg",
  cpu: "bench/results/cpu.svg",
  memory: "bench/results/memory.svg",
} as const;

function method(r: BenchResults): string {
  const s = r.settings;
  return `## Method

Every peer is measured in the same run, on the same topology, one after the
other, with the same load generators:

- **Topology**: the project's local mesh network (\`local/mesh-network.ts\`, the one
  \`ambit up\` builds), made by the harness with mesh id \`b<random>\` (every
  namespace \`ambit-b<random>-*\`, removed at exit): a fabric bridge, a
  control-plane namespace, two nodes, a client pod on node-1 and a server pod
  on node-2, each pod on a veth to its node. The application servers run in the server pod
  (fortio server: HTTP echo on :8080, gRPC ping on :8079, TCP echo on :8078;
  iperf3 on :5201); every load generator runs in the client pod.
- **1. Latency** (Istio's published method): fortio at a fixed
  ${s.latency.qps} rps, ${s.latency.connections} connections, HTTP/1.1 keep-alive,
  POST of ${s.latency.payloadBytes} B echoed back, for ${s.latency.durationSec} s after a short
  warm-up at the same rate; histogram resolution 10 µs.
- **2. Cost**: utime+stime (from \`/proc/PID/stat\`) of every proxy process on
  the path and its children, over the measured phase, divided by wall time (vCPU);
  RSS (\`VmRSS\`) sampled every 500 ms, the maximum is reported. Summed over both
  nodes' proxies; per 1,000 rps divides by the achieved rate.
- **3. Saturation**: wrk, ${s.saturation.connections} connections, ${s.saturation.threads} thread(s),
  ${s.saturation.durationSec} s, GET of a 1 KB response, keep-alive and with \`Connection: close\`
  (a new connection, and through a proxy a new tunnel stream, per request). Bulk TCP:
  iperf3, 1 and 8 parallel streams, ${s.saturation.tcpDurationSec} s (first second omitted).
- **4. gRPC**: fortio's gRPC ping (unary, 1 KB payload), ${s.grpc.requests.toLocaleString("en-US")} requests,
  ${s.grpc.connections} connections × ${s.grpc.streamsPerConnection} streams (${s.grpc.connections * s.grpc.streamsPerConnection} concurrent), as fast as possible;
  HTTP/2 multiplexed: h2load (h2c) ${s.grpc.h2Requests.toLocaleString("en-US")} requests, same connections and streams.
- **5. Scale**: ${s.scale.idleConnections.toLocaleString("en-US")} TCP connections opened from the client
  pod to the TCP echo server (${s.scale.setupConcurrency} in flight; each proven with a 1-byte round
  trip), then held idle while the proxies' RSS is read; setups per second is the rate they opened at.
- **6. Control plane**: ${s.controlPlane.subscribers} simulated ztunnels (delta xDS streams subscribed to
  \`istio.workload.Address\`, spread over one process per core as real proxies take in
  their responses in parallel, each advertising a ztunnel's 2 MiB HTTP/2 stream window; one
  of them decodes every resource) on one delta ADS server; the server publishes N pod
  workloads; the time runs from publish to the last subscriber's ACK. Then
  ${s.controlPlane.incrementalChanges} one-pod changes, each timed the same way.

Profiling: \`AMBIT_BENCH_CPU_PROF=DIR npm run bench -- --peers ambit-l4\` starts each
ztunnel with \`node --cpu-prof\`, writing \`DIR/ztunnel-<node>.cpuprofile\` when it
stops (open in Chrome DevTools or speedscope); \`AMBIT_BENCH_LOG_LEVEL=info\` keeps
ambit's access logs in the work directory (\`--keep\`).

Ratios divide a peer's number by direct's and by the HAProxy pair's, measured in
the same run. The machine has ${r.machine.cores} cores shared by load generator,
proxies and server: absolute numbers are this machine's, the ratios are the point.
`;
}

function peersSection(r: BenchResults): string {
  const desc: Record<string, string> = {
    direct: "no proxy: client pod → server pod through the nodes' routing",
    "ambit-l4":
      "two ztunnels (one per node), in-pod capture, HBONE (HTTP/2 CONNECT over mTLS) between the nodes",
    "ambit-waypoint": "ambit L4 plus a waypoint on the path (L7)",
    "haproxy-tcp":
      "the reference: HAProxy on each node (nbthread 1), TCP mode; client side originates TLS 1.3 with a client certificate, server side terminates it verifying the client certificate",
    "haproxy-http":
      "the same pair in HTTP mode: HTTP/2 between the nodes (multiplexed), keep-alive pooling, retries on connection failure (the L7 reference)",
  };
  const rows = listedPeers(r).map((p) => {
    const info = r.peers.find((x) => x.name === p);
    const status =
      info?.status === "measured" ? "measured" : `**${info?.status ?? "?"}**: ${info?.note ?? ""}`;
    return `| ${info?.label ?? p} | ${desc[p] ?? ""} | ${status} |`;
  });
  return `## Peers\n\n| peer | path | this run |\n|---|---|---|\n${rows.join("\n")}\n`;
}

function caveats(r: BenchResults): string {
  const load = r.machine.loadAverage;
  const lines = [
    `- One machine of ${r.machine.cores} cores runs the load generator, the proxies and the server at once: a proxy that uses more CPU also slows the load generator and the server. The ratios compare peers under the same constraint.`,
    ...(load
      ? [
          `- Load average when the run started: ${load.map((x) => x.toFixed(1)).join(", ")} (1, 5, 15 min); anything above 0 is other work sharing the cores.`,
        ]
      : []),
    "- HAProxy needs two file descriptors per proxied connection and this container's hard open-file limit is 20,000 (no CAP_SYS_RESOURCE to raise it): the HAProxy pair holds at most 9,000 connections in the scale scenario; its per-connection figure is comparable, its total is not.",
    "- ambit's ztunnels run with logging at `warn` (no access log line per connection) while measuring.",
    "- Control plane: the simulated ztunnels are the project's `DeltaAdsClient` with a handler that applies nothing (no Address decoding), all in one process; grpc-js shares one HTTP/2 connection among channels to the same target, so they share one connection to the server. The server runs in its own process, and its RSS is that process's.",
    "- fortio's histogram interpolates within buckets; p99.9 at a fixed rate for 60 s rests on 60 samples.",
    "- Profiling notes (where ztunnel's time goes, and what was changed, with before/after): [bench/PROFILING.md](bench/PROFILING.md).",
  ];
  return `## Reading these numbers\n\n${lines.join("\n")}\n`;
}

export function renderBenchmarksMd(r: BenchResults, soak?: SoakResult): string {
  const m = r.machine;
  const v = m.versions;
  const minutes = ((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 60000).toFixed(1);
  const parts = [
    `# Benchmarks

Generated by \`npm run bench\` (${r.mode} run, ${r.startedAt.slice(0, 16).replace("T", " ")} UTC, ${minutes} min)
from [bench/results/latest.json](bench/results/latest.json); do not edit by hand.
\`npm run bench -- --quick\` is the one-minute smoke that CI runs (it checks that
the harness and every peer work and asserts no timing).

## Machine

| | |
|---|---|
| CPU | ${m.cpuModel} |
| cores | ${m.cores} |
| memory | ${m.memoryGB} GB |
| kernel | ${m.kernel} |
| node | ${v.node ?? "?"} |
| haproxy | ${v.haproxy ?? "?"} |
| fortio | ${v.fortio ?? "?"} |
| wrk / h2load / iperf3 | ${v.wrk ?? "?"} / ${v.h2load ?? "?"} / ${v.iperf3 ?? "?"} |
| openssl | ${v.openssl ?? "?"} |
`,
    peersSection(r),
    method(r),
    "## Results\n",
    `![latency percentiles per peer](${CHART_FILES.latency})\n\n![CPU per peer](${CHART_FILES.cpu})\n\n![memory per peer](${CHART_FILES.memory})\n`,
    ...TABLES.map((t) => renderMetricTable(r, t)),
    renderControlPlane(r),
    renderTargets(r),
    renderSoakSection(soak),
    caveats(r),
  ];
  if (r.errors.length) {
    parts.push(
      `## Steps that failed in this run\n\n${r.errors
        .map((e) => `- ${e.peer ?? "harness"} / ${e.scenario}: ${e.message.split("\n")[0]}`)
        .join("\n")}\n`,
    );
  }
  return parts.join("\n");
}
