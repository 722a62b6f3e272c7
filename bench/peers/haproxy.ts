// Peers (d) and (e): the reference mTLS tunnel pair built from HAProxy, one
// process per node, one thread each (`nbthread 1`), as a ztunnel per node.
//   client node: plaintext listener for the client pod -> TLS 1.3 origination
//                with a client certificate to the server node
//   server node: TLS termination verifying the client certificate against the
//                root -> plaintext to the server pod
// (d) "tcp" carries bytes (as ambit's L4 path does); (e) "http" parses HTTP
// on both sides, multiplexes HTTP/2 between the nodes and retries, as a
// waypoint path would.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PairCerts } from "../certs.js";
import { Proc, run, waitForPort } from "../procs.js";
import type { Topology } from "../topology.js";
import {
  APP_PORTS,
  type AppPort,
  type Peer,
  type PeerContext,
  type PeerRuntime,
  type Targets,
} from "./types.js";

export type HaproxyMode = "tcp" | "http";

/** Client-side listener port for an application port (what the client pod dials on its node). */
export const clientPort = (p: AppPort) => APP_PORTS[p] + 10000;
/** Server-side TLS listener port for an application port. */
export const tunnelPort = (p: AppPort) => APP_PORTS[p] + 20000;

const L7_PORTS: ReadonlySet<AppPort> = new Set(["http", "grpc"]);

/**
 * HAProxy needs two descriptors per proxied connection and cannot raise its
 * open-file limit above the hard limit (20,000 on this machine kind, and no
 * CAP_SYS_RESOURCE to raise it): it carries at most this many at once.
 */
export const HAPROXY_MAXCONN = 9000;

const GLOBAL = `global
  nbthread 1
  maxconn ${HAPROXY_MAXCONN}
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
  tune.ssl.cachesize 20000

defaults
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  maxconn ${HAPROXY_MAXCONN}
`;

/** The two HAProxy configurations, as text (pure). */
export function haproxyConfigs(
  mode: HaproxyMode,
  topo: Topology,
  certs: PairCerts,
): { client: string; server: string } {
  const ports = Object.keys(APP_PORTS) as AppPort[];
  let client = GLOBAL;
  let server = GLOBAL;
  for (const p of ports) {
    const l7 = mode === "http" && L7_PORTS.has(p);
    const h2app = p === "grpc";
    const m = l7 ? "http" : "tcp";
    const l7Opts = l7
      ? "  option http-keep-alive\n  http-reuse always\n  retries 2\n  retry-on conn-failure empty-response 503\n  timeout server 30s\n"
      : "";
    // Between the nodes: TLS 1.3 with client certs; HTTP/2 when parsing HTTP (multiplexed, as HBONE).
    const alpn = l7 ? " alpn h2" : "";
    client += `
frontend out_${p}
  mode ${m}
  bind ${topo.clientNode.podGatewayIp}:${clientPort(p)}${l7 && h2app ? " proto h2" : ""}
  default_backend tunnel_${p}

backend tunnel_${p}
  mode ${m}
${l7Opts}  server peer ${topo.serverNode.linkIp}:${tunnelPort(p)} ssl crt ${certs.clientPem} ca-file ${certs.caPem} verify required verifyhost server${alpn}
`;
    server += `
frontend in_${p}
  mode ${m}
  bind ${topo.serverNode.linkIp}:${tunnelPort(p)} ssl crt ${certs.serverPem} ca-file ${certs.caPem} verify required${alpn}
  default_backend app_${p}

backend app_${p}
  mode ${m}
${l7 ? "  option http-keep-alive\n  http-reuse always\n" : ""}  server app ${topo.serverPod.ip}:${APP_PORTS[p]}${l7 && h2app ? " proto h2" : ""}
`;
  }
  return { client, server };
}

async function haproxyAvailable(): Promise<string | undefined> {
  const r = await run("haproxy", ["-v"], { allowFail: true }).catch(() => undefined);
  return r && r.code === 0 ? undefined : "haproxy is not installed (scripts/build-fortio.sh installs it)";
}

function haproxyPeer(mode: HaproxyMode): Peer {
  return {
    name: mode === "tcp" ? "haproxy-tcp" : "haproxy-http",
    label: mode === "tcp" ? "HAProxy mTLS pair (TCP)" : "HAProxy mTLS pair (HTTP mode)",
    l7: mode === "http",
    maxConnections: HAPROXY_MAXCONN,
    unavailable: haproxyAvailable,
    async start(ctx: PeerContext): Promise<PeerRuntime> {
      const { topo, workDir, certs } = ctx;
      const cfg = haproxyConfigs(mode, topo, certs);
      const files = {
        client: join(workDir, `haproxy-${mode}-client.cfg`),
        server: join(workDir, `haproxy-${mode}-server.cfg`),
      };
      writeFileSync(files.client, cfg.client);
      writeFileSync(files.server, cfg.server);
      await run("haproxy", ["-c", "-q", "-f", files.client]);
      const log = (side: string) => join(workDir, `haproxy-${mode}-${side}.log`);
      const srv = Proc.start(
        `haproxy-${mode}-server`,
        topo.serverNode.netns,
        "haproxy",
        ["-db", "-f", files.server],
        log("server"),
      );
      const cli = Proc.start(
        `haproxy-${mode}-client`,
        topo.clientNode.netns,
        "haproxy",
        ["-db", "-f", files.client],
        log("client"),
      );
      const procs = [srv, cli];
      try {
        await waitForPort(topo.serverNode.netns, topo.serverNode.linkIp, tunnelPort("http"), { proc: srv });
        await waitForPort(topo.clientPod.netns, topo.clientNode.podGatewayIp, clientPort("http"), {
          proc: cli,
        });
      } catch (err) {
        await Promise.all(procs.map((p) => p.close()));
        throw err;
      }
      const targets = Object.fromEntries(
        (Object.keys(APP_PORTS) as AppPort[]).map((p) => [
          p,
          { ip: topo.clientNode.podGatewayIp, port: clientPort(p) },
        ]),
      ) as Targets;
      return {
        targets,
        measured: [
          { role: "client-side", pid: cli.pid },
          { role: "server-side", pid: srv.pid },
        ],
        close: async () => {
          await Promise.all(procs.map((p) => p.close()));
        },
      };
    },
  };
}

export const haproxyTcpPeer = haproxyPeer("tcp");
export const haproxyHttpPeer = haproxyPeer("http");
