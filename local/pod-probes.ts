// Readiness probes of the pod runner (Kubernetes semantics): exec, httpGet,
// tcpSocket and grpc (a TCP connect), run from inside the pod's network
// namespace against the pod IP, with initialDelay/period/timeout and the
// success/failure thresholds. Until the first success a probe repeats every
// `fastMs` rather than every periodSeconds, so a local mesh starts in seconds.
import net from "node:net";
import tls from "node:tls";
import type { Container, Probe } from "../controller/provider/objects.js";
import { ObjectError } from "../core/errors/errors.js";
import { connectInNetns } from "../ztunnel/node-agent/native.js";
import { execInNetns } from "./netns-process.js";
import type { ContainerSandbox, PodRunSpec } from "./pod-runner.js";

/** A pod's reference for errors ("Pod ns/name"), from its key. */
export function podRef(key: string): { kind: string; namespace?: string; name: string } {
  const [namespace, name] = key.includes("/") ? (key.split("/", 2) as [string, string]) : [undefined, key];
  return namespace ? { kind: "Pod", namespace, name } : { kind: "Pod", name };
}

/** Runs one container's readiness probe on its schedule and reports each change of result. */
export class ProbeLoop {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private successes = 0;
  private failures = 0;
  private everReady = false;

  constructor(
    private readonly probe: Probe,
    private readonly pod: PodRunSpec,
    private readonly run: ProbeTarget,
    private readonly fastMs: number,
    private readonly onResult: (ready: boolean) => void,
  ) {}

  start(): void {
    this.schedule((this.probe.initialDelaySeconds ?? 0) * 1000);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    const ok = await runProbe(this.probe, this.pod, this.run).catch(() => false);
    if (this.stopped) return;
    if (ok) {
      this.successes++;
      this.failures = 0;
      if (this.successes >= (this.probe.successThreshold ?? 1)) {
        this.everReady = true;
        this.onResult(true);
      }
    } else {
      this.failures++;
      this.successes = 0;
      if (!this.everReady || this.failures >= (this.probe.failureThreshold ?? 3)) this.onResult(false);
    }
    const period = (this.probe.periodSeconds ?? 10) * 1000;
    this.schedule(this.everReady ? period : Math.min(this.fastMs, period));
  }
}

function resolvePort(port: number | string, c: Container, key: string): number {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = c.ports?.find((p) => p.name === port);
  if (!named)
    throw new ObjectError(
      "INVALID_FIELD",
      podRef(key),
      `containers[${c.name}].readinessProbe.port`,
      `no container port named '${port}'`,
    );
  return named.containerPort;
}

/** The container a probe checks (exec probes run in its sandbox). */
export interface ProbeTarget {
  spec: Container;
  env: NodeJS.ProcessEnv;
  sandbox?: ContainerSandbox;
}

/** One probe attempt from inside the pod's namespace: true when it passes. */
export async function runProbe(probe: Probe, pod: PodRunSpec, run: ProbeTarget): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.exec) {
    const argv = run.sandbox ? run.sandbox(run.spec, probe.exec.command) : probe.exec.command;
    const code = await execInNetns(pod.netnsPath, argv, {
      env: run.env,
      stdio: "ignore",
      timeoutMs,
    });
    return code === 0;
  }
  if (probe.tcpSocket) {
    const socket = await connectInNetns(pod.netnsPath, {
      host: probe.tcpSocket.host ?? pod.ip,
      port: resolvePort(probe.tcpSocket.port, run.spec, pod.key),
      timeoutMs,
    });
    socket.destroy();
    return true;
  }
  if (probe.httpGet) return httpProbe(probe.httpGet, pod, run.spec, timeoutMs);
  if (probe.grpc) {
    // No gRPC health client here: a TCP connect is the closest honest check.
    const socket = await connectInNetns(pod.netnsPath, { host: pod.ip, port: probe.grpc.port, timeoutMs });
    socket.destroy();
    return true;
  }
  throw new ObjectError(
    "INVALID_FIELD",
    podRef(pod.key),
    `containers[${run.spec.name}].readinessProbe`,
    "no exec, httpGet, tcpSocket or grpc",
  );
}

async function httpProbe(
  get: NonNullable<Probe["httpGet"]>,
  pod: PodRunSpec,
  c: Container,
  timeoutMs: number,
): Promise<boolean> {
  const host = get.host ?? pod.ip;
  const port = resolvePort(get.port, c, pod.key);
  const raw = await connectInNetns(pod.netnsPath, { host, port, timeoutMs });
  const socket: net.Socket =
    get.scheme === "HTTPS" ? tls.connect({ socket: raw, rejectUnauthorized: false }) : raw;
  return new Promise<boolean>((resolve) => {
    let head = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      raw.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => {
      head += d;
      const m = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head);
      if (m) done(Number(m[1]) >= 200 && Number(m[1]) < 400);
      else if (head.includes("\r\n") || head.length > 1024) done(false);
    });
    const hostHeader = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    const headers = [
      `Host: ${hostHeader}`,
      "User-Agent: kube-probe/1.37",
      "Accept: */*",
      "Connection: close",
    ];
    for (const h of get.httpHeaders ?? []) headers.push(`${h.name}: ${h.value}`);
    socket.write(`GET ${get.path ?? "/"} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n`);
  });
}
