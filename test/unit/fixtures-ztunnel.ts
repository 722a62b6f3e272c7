// Small builders for ztunnel/HBONE unit tests: model objects with defaults,
// a random 127.x.y.0/24 per test file (so parallel test files never collide
// on an IP:port), an application server with echo/half-close/reset
// behaviour, and metric readers.
import { EventEmitter, once } from "node:events";
import net from "node:net";
import type { Counter } from "prom-client";
import type { AuthzPolicy, MeshService, MeshWorkload } from "../../core/model/types.js";

/** A random loopback /24: ip(n) → 127.a.b.n. */
export function loopbackNet(): (n: number) => string {
  const a = 1 + Math.floor(Math.random() * 250);
  const b = 1 + Math.floor(Math.random() * 250);
  return (n: number) => `127.${a}.${b}.${n}`;
}

export function workload(
  p: Partial<MeshWorkload> & { name: string; namespace: string; ip: string; node: string },
): MeshWorkload {
  const { ip, ...rest } = p;
  return {
    uid: `Kubernetes//v1/Pod/${p.namespace}/${p.name}`,
    ips: [ip],
    serviceAccount: p.name,
    trustDomain: "cluster.local",
    tunnel: "hbone",
    services: {},
    healthy: true,
    canonicalName: p.name,
    canonicalRevision: "latest",
    workloadName: p.name,
    workloadType: "deployment",
    clusterId: "Kubernetes",
    network: "",
    authorizationPolicies: [],
    ...rest,
  };
}

export function service(
  p: Partial<MeshService> & {
    name: string;
    namespace: string;
    vip: string;
    port: number;
    targetPort: number;
  },
): MeshService {
  const { vip, port, targetPort, ...rest } = p;
  return {
    key: `${p.namespace}/${p.name}.${p.namespace}.svc.cluster.local`,
    hostname: `${p.name}.${p.namespace}.svc.cluster.local`,
    vips: [vip],
    ports: [{ port, targetPort, appProtocol: "tcp" }],
    ...rest,
  };
}

export function policy(
  p: Partial<AuthzPolicy> & { name: string; namespace: string; action: "allow" | "deny" },
): AuthzPolicy {
  return { scope: "namespace", rules: [], dryRun: false, ...p };
}

export function spiffe(ns: string, sa: string, td = "cluster.local"): string {
  return `spiffe://${td}/ns/${ns}/sa/${sa}`;
}

export interface AppConnEnd {
  hadError: boolean;
  code?: string;
  received: string;
}

/**
 * A test application: echoes what it reads; on FIN writes `END:<bytes>` and
 * closes its side (so half-close is observable); on reading "CLOSE" it
 * half-closes first ("bye") and keeps reading; on reading "RESET" resets
 * the connection. Emits "conn" (socket) and "end" (AppConnEnd) per connection.
 */
export class TestApp extends EventEmitter {
  readonly server: net.Server;
  constructor() {
    super();
    this.server = net.createServer({ allowHalfOpen: true }, (s) => {
      this.emit("conn", s);
      this.open.add(s);
      s.once("close", () => this.open.delete(s));
      let received = "";
      let code: string | undefined;
      s.on("error", (e: Error & { code?: string }) => {
        code = e.code;
      });
      s.on("data", (d: Buffer) => {
        received += d.toString();
        if (received.includes("RESET")) {
          s.resetAndDestroy();
          return;
        }
        if (s.writableEnded) return;
        if (received.includes("CLOSE")) {
          // The application half-closes first and keeps reading.
          s.end("bye");
          return;
        }
        s.write(d);
      });
      s.on("end", () => {
        if (!s.writableEnded) s.end(`END:${received.length}`);
      });
      s.on("close", (hadError) => this.emit("end", { hadError, code, received } satisfies AppConnEnd));
    });
  }
  async listen(host: string, port = 0): Promise<number> {
    this.server.listen(port, host);
    await once(this.server, "listening");
    return (this.server.address() as net.AddressInfo).port;
  }
  private readonly open = new Set<net.Socket>();
  close(): Promise<void> {
    return new Promise((r) => {
      this.server.close(() => r());
      for (const s of this.open) s.destroy();
    });
  }
}

/** Sum of a counter's values whose labels include `labels`. */
export async function metricValue(c: Counter<string>, labels: Record<string, string> = {}): Promise<number> {
  const m = await c.get();
  return m.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((a, v) => a + v.value, 0);
}

/** Reads a socket to its end (or close); resolves with what arrived and whether it ended with an error. */
export function readAll(s: net.Socket): Promise<{ data: string; error?: string; ended: boolean }> {
  return new Promise((resolve) => {
    let data = "";
    let error: string | undefined;
    let ended = false;
    s.on("data", (d: Buffer) => {
      data += d.toString();
    });
    s.on("end", () => {
      ended = true;
    });
    s.on("error", (e: Error & { code?: string }) => {
      error = e.code ?? e.message;
    });
    s.on("close", () => resolve({ data, error, ended }));
  });
}

/** Connects from a given local IP. */
export async function connectFrom(localAddress: string, host: string, port: number): Promise<net.Socket> {
  const s = net.connect({ host, port, localAddress, allowHalfOpen: true });
  await once(s, "connect");
  return s;
}

/** Connects from a given local IP and starts reading at once (a peer may reset before 'connect' is seen). */
export function dial(
  localAddress: string,
  host: string,
  port: number,
): { s: net.Socket; done: ReturnType<typeof readAll> } {
  const s = net.connect({ host, port, localAddress, allowHalfOpen: true });
  return { s, done: readAll(s) };
}
