// The load generators, each run inside the client pod, and the parsing of
// their output into plain numbers (parsers are pure and unit-tested).

import type { Addr } from "./peers/types.js";
import { runIn } from "./procs.js";

export interface LatencyRun {
  requestedQps: number;
  actualQps: number;
  connections: number;
  durationSec: number;
  payloadBytes: number;
  count: number;
  errors: number;
  /** Milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
}

interface FortioJson {
  RequestedQPS?: string | number;
  ActualQPS: number;
  ActualDuration: number;
  NumThreads: number;
  RetCodes?: Record<string, number>;
  DurationHistogram: { Count: number; Percentiles?: { Percentile: number; Value: number }[] };
  ErrorsDurationHistogram?: { Count: number };
}

/** fortio's -json output → LatencyRun (ok codes: HTTP 200, gRPC SERVING). */
export function parseFortio(jsonText: string, payloadBytes: number): LatencyRun {
  // The result is the pretty-printed object; anything before it (log lines) is skipped.
  const start = jsonText.search(/^\{\s*$/m);
  const j = JSON.parse(jsonText.slice(start >= 0 ? start : jsonText.indexOf("{"))) as FortioJson;
  const pct = (p: number) => {
    const v = j.DurationHistogram.Percentiles?.find((x) => x.Percentile === p)?.Value;
    return v === undefined ? Number.NaN : v * 1000;
  };
  const codes = j.RetCodes ?? {};
  const ok = (codes["200"] ?? 0) + (codes.SERVING ?? 0);
  const total = j.DurationHistogram.Count;
  return {
    requestedQps: Number(j.RequestedQPS ?? 0) || 0,
    actualQps: j.ActualQPS,
    connections: j.NumThreads,
    durationSec: j.ActualDuration / 1e9,
    payloadBytes,
    count: total,
    errors: Math.max(0, total - ok),
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    p999: pct(99.9),
  };
}

export interface FortioHttpOptions {
  qps: number;
  connections: number;
  durationSec: number;
  payloadBytes: number;
}

/** Fixed-rate HTTP/1.1 load (Istio's published method): POST of payloadBytes, echoed back. */
export async function fortioHttp(
  netns: string,
  fortio: string,
  target: Addr,
  o: FortioHttpOptions,
): Promise<LatencyRun> {
  const { stdout } = await runIn(
    netns,
    fortio,
    [
      "load",
      "-loglevel",
      "Error",
      "-json",
      "-",
      "-r",
      "0.00001",
      "-p",
      "50,90,99,99.9",
      "-qps",
      String(o.qps),
      "-c",
      String(o.connections),
      "-t",
      `${o.durationSec}s`,
      "-payload-size",
      String(o.payloadBytes),
      `http://${target.ip}:${target.port}/echo`,
    ],
    { timeoutMs: (o.durationSec + 60) * 1000 },
  );
  return parseFortio(stdout, o.payloadBytes);
}

export interface GrpcOptions {
  requests: number;
  connections: number;
  streamsPerConnection: number;
  payloadBytes: number;
}

/** gRPC unary (fortio's PingServer.Ping) at max rate, streams multiplexed over few HTTP/2 connections. */
export async function fortioGrpc(
  netns: string,
  fortio: string,
  target: Addr,
  o: GrpcOptions,
): Promise<LatencyRun> {
  const { stdout } = await runIn(
    netns,
    fortio,
    [
      "load",
      "-loglevel",
      "Error",
      "-json",
      "-",
      "-r",
      "0.00001",
      "-p",
      "50,90,99,99.9",
      "-grpc",
      "-ping",
      "-qps",
      "0",
      "-n",
      String(o.requests),
      "-c",
      String(o.connections),
      "-s",
      String(o.streamsPerConnection),
      "-payload-size",
      String(o.payloadBytes),
      `${target.ip}:${target.port}`,
    ],
    { timeoutMs: 300_000 },
  );
  return parseFortio(stdout, o.payloadBytes);
}

export interface RateRun {
  rps: number;
  requests: number;
  errors: number;
  durationSec: number;
}

/** wrk's text output → RateRun. */
export function parseWrk(text: string): RateRun {
  const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? Number.NaN);
  const m = text.match(/(\d+) requests in ([\d.]+)(us|ms|s|m)/);
  const unit = { us: 1e-6, ms: 1e-3, s: 1, m: 60 }[(m?.[3] ?? "s") as "us" | "ms" | "s" | "m"];
  const errs = text.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = Number(text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const sockErrs = errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    rps,
    requests: Number(m?.[1] ?? 0),
    durationSec: Number(m?.[2] ?? 0) * unit,
    errors: non2xx + sockErrs,
  };
}

/** Saturation with wrk: max rate at `connections`, keep-alive or a new connection per request. */
export async function wrk(
  netns: string,
  target: Addr,
  o: { connections: number; durationSec: number; newConnection: boolean; threads: number },
): Promise<RateRun> {
  const args = ["-t", String(o.threads), "-c", String(o.connections), "-d", `${o.durationSec}s`];
  if (o.newConnection) args.push("-H", "Connection: close");
  args.push(`http://${target.ip}:${target.port}/echo?size=1024`);
  const { stdout } = await runIn(netns, "wrk", args, { timeoutMs: (o.durationSec + 60) * 1000 });
  return parseWrk(stdout);
}

/** h2load's text output → RateRun. */
export function parseH2load(text: string): RateRun {
  const m = text.match(/finished in ([\d.]+)(us|ms|s), ([\d.]+) req\/s/);
  const unit = { us: 1e-6, ms: 1e-3, s: 1 }[(m?.[2] ?? "s") as "us" | "ms" | "s"];
  const req = text.match(
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/,
  );
  const status = text.match(/status codes: (\d+) 2xx/);
  const done = Number(req?.[3] ?? 0);
  const ok2xx = Number(status?.[1] ?? 0);
  return {
    rps: Number(m?.[3] ?? Number.NaN),
    requests: done,
    durationSec: Number(m?.[1] ?? 0) * unit,
    errors: Number(req?.[5] ?? 0) + Number(req?.[6] ?? 0) + Math.max(0, done - ok2xx - Number(req?.[5] ?? 0)),
  };
}

/** HTTP/2 multiplexed (h2c, prior knowledge): `requests` over `connections` with `streams` each. */
export async function h2load(
  netns: string,
  target: Addr,
  o: { requests: number; connections: number; streams: number },
): Promise<RateRun> {
  const { stdout } = await runIn(
    netns,
    "h2load",
    [
      "-n",
      String(o.requests),
      "-c",
      String(o.connections),
      "-m",
      String(o.streams),
      `http://${target.ip}:${target.port}/echo?size=1024`,
    ],
    { timeoutMs: 300_000 },
  );
  return parseH2load(stdout);
}

/** iperf3 -J → MB/s received (10^6 bytes per second). */
export function parseIperf(jsonText: string): number {
  const j = JSON.parse(jsonText) as { end?: { sum_received?: { bits_per_second: number } }; error?: string };
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return (j.end?.sum_received?.bits_per_second ?? Number.NaN) / 8 / 1e6;
}

export async function iperf(
  netns: string,
  target: Addr,
  o: { streams: number; durationSec: number },
): Promise<number> {
  // iperf3's server runs one test at a time and frees itself only when the previous
  // test's control connection has closed, which through a proxy can lag a moment.
  for (let attempt = 1; ; attempt++) {
    try {
      return await iperfOnce(netns, target, o);
    } catch (err) {
      if (attempt >= 10 || !/busy/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

async function iperfOnce(
  netns: string,
  target: Addr,
  o: { streams: number; durationSec: number },
): Promise<number> {
  const { stdout } = await runIn(
    netns,
    "iperf3",
    [
      "-J",
      "-c",
      target.ip,
      "-p",
      String(target.port),
      "-P",
      String(o.streams),
      "-t",
      String(o.durationSec),
      "-O",
      "1",
    ],
    { timeoutMs: (o.durationSec + 60) * 1000, allowFail: true },
  );
  return parseIperf(stdout);
}
