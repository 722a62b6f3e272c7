// Peer (c): ambit L4 plus a waypoint. The bench namespace also holds a
// Gateway of class ambit-waypoint (its address declared: the waypoint pod's
// IP) and a Service `server` with a fixed VIP that uses it; the waypoint runs
// as `ambit waypoint` in a pod of its own on the server's node (not captured).
// The client pod calls the Service VIP: client ztunnel → HBONE → waypoint
// (HTTP routing) → HBONE → server ztunnel → server pod. As for L4, the path is
// proven before measuring (the waypoint's request counter moves).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { waypointNodeFlags } from "../../waypoint/launch-flags.js";
import { Proc, run, runIn } from "../procs.js";
import { BENCH_NAMESPACE, type PodPlan } from "../topology.js";
import {
  benchYaml,
  CLI,
  counterSum,
  httpGetIn,
  PLAIN_NODE,
  startAmbitProcesses,
  waitReady,
  XDS_PORT,
} from "./ambit.js";
import { APP_PORTS, type Peer, type PeerContext, type PeerRuntime, type Targets } from "./types.js";

/** The Service VIP the client calls (inside the bench mesh only). */
export const SERVICE_VIP = "10.96.0.50";
const WAYPOINT = "waypoint";

/** The waypoint objects added to the bench YAML (pure). */
export function waypointYaml(waypointIp: string): string {
  const ns = BENCH_NAMESPACE;
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ${WAYPOINT}
  namespace: ${ns}
spec:
  gatewayClassName: ambit-waypoint
  addresses:
    - type: IPAddress
      value: ${waypointIp}
  listeners:
    - name: mesh
      port: 15008
      protocol: HBONE
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${WAYPOINT}
  namespace: ${ns}
---
apiVersion: v1
kind: Pod
metadata:
  name: ${WAYPOINT}-0
  namespace: ${ns}
  labels:
    gateway.networking.k8s.io/gateway-name: ${WAYPOINT}
    ambit.dev/dataplane-mode: none
spec:
  nodeName: node-2
  serviceAccountName: ${WAYPOINT}
  containers:
    - name: waypoint
      image: ambit
      command: ["sleep", "infinity"]
---
apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: ${ns}
  labels:
    ambit.dev/use-waypoint: ${WAYPOINT}
spec:
  clusterIP: ${SERVICE_VIP}
  selector:
    app: server
  ports:
    - name: http
      port: ${APP_PORTS.http}
      targetPort: ${APP_PORTS.http}
      appProtocol: http
    - name: grpc
      port: ${APP_PORTS.grpc}
      targetPort: ${APP_PORTS.grpc}
      appProtocol: grpc
`;
}

async function startWaypointPeer(ctx: PeerContext): Promise<PeerRuntime> {
  const { topo, fortio } = ctx;
  const gw = topo.serverNode.podGatewayIp;
  const wpIp = `${gw.slice(0, gw.lastIndexOf("."))}.3`;
  const net = await ctx.mesh.addPod({
    key: `${BENCH_NAMESPACE}/${WAYPOINT}-0`,
    node: topo.serverNode.name,
    ip: wpIp,
  });
  const wpPod: PodPlan = {
    key: net.key,
    netns: net.netns,
    netnsPath: net.netnsPath,
    ip: net.ip,
    node: topo.serverNode,
  };
  const ambit = await startAmbitProcesses(ctx, {
    yaml: `${benchYaml()}---\n${waypointYaml(wpIp)}`,
    extraPods: [wpPod],
  });
  let wp: Proc | undefined;
  const close = async () => {
    await wp?.close(5000);
    await ambit.close();
    await ctx.mesh.removePod(wpPod.key, { graceMs: 1000 });
  };
  try {
    // AMBIT_BENCH_CPU_PROF=DIR: the waypoint writes DIR/waypoint.cpuprofile when it exits (as the ztunnels do).
    const prof = process.env.AMBIT_BENCH_CPU_PROF;
    wp = Proc.start(
      "waypoint",
      wpPod.netns,
      PLAIN_NODE[0],
      [
        ...PLAIN_NODE.slice(1),
        // The waypoint's V8 flags (none by default; AMBIT_WAYPOINT_NODE_FLAGS for an A/B): waypoint/launch-flags.ts.
        ...waypointNodeFlags(),
        ...(prof ? ["--cpu-prof", "--cpu-prof-dir", prof, "--cpu-prof-name", "waypoint.cpuprofile"] : []),
        CLI,
        "waypoint",
        "--gateway",
        `${BENCH_NAMESPACE}/${WAYPOINT}`,
        "--xds",
        `${topo.controlPlane.ip}:${XDS_PORT}`,
        "--pod-ip",
        wpIp,
        "--token-file",
        join(ambit.dir, `${topo.serverNode.name}.token`),
        "--service-account",
        WAYPOINT,
        "--access-log-sample",
        "0",
        "--drain-seconds",
        "1",
      ],
      join(ambit.dir, "waypoint.log"),
      { ...process.env, AMBIT_LOG_LEVEL: process.env.AMBIT_BENCH_LOG_LEVEL ?? "warn" },
    );
    await waitReady(wpPod.netns, fortio, wp, 60_000, "/");
    const requests = async () =>
      counterSum(
        await httpGetIn(wpPod.netns, fortio, "http://127.0.0.1:15020/metrics"),
        "istio_requests_total",
      );
    const before = await requests();
    let ok = false;
    let why = "";
    for (let attempt = 0; attempt < 3 && !ok; attempt++) {
      const r = await runIn(
        topo.clientPod.netns,
        fortio,
        [
          "curl",
          "-loglevel",
          "Error",
          "-timeout",
          "15s",
          `http://${SERVICE_VIP}:${APP_PORTS.http}/echo?size=16`,
        ],
        { allowFail: true, timeoutMs: 30_000 },
      );
      ok = r.code === 0;
      if (!ok) why = `fortio curl exit ${r.code}: ${r.stderr.trim().slice(-300)}`;
    }
    if (!ok)
      throw new Error(
        `ambit-waypoint: the client pod cannot reach the Service through the waypoint (${why})`,
      );
    const moved = (await requests()) - before;
    if (!(moved > 0))
      throw new Error(
        "ambit-waypoint: the request did not go through the waypoint; not measuring it as the waypoint path",
      );
    const vip = (port: number) => ({ ip: SERVICE_VIP, port });
    const targets: Targets = {
      http: vip(APP_PORTS.http),
      grpc: vip(APP_PORTS.grpc),
      tcpEcho: { ip: topo.serverPod.ip, port: APP_PORTS.tcpEcho },
      iperf: { ip: topo.serverPod.ip, port: APP_PORTS.iperf },
    };
    return {
      targets,
      measured: [
        ...ambit.ztunnels.map((z) => ({ role: `ztunnel ${z.node}`, pid: z.proc.pid })),
        { role: "waypoint", pid: wp.pid },
      ],
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

async function waypointAvailable(): Promise<string | undefined> {
  if (!existsSync(CLI)) return `ambit CLI not built (${CLI})`;
  const r = await run(process.execPath, [CLI, "waypoint", "--help"], { allowFail: true, timeoutMs: 20_000 });
  return r.code === 0 && /--gateway/.test(r.stdout + r.stderr)
    ? undefined
    : "`ambit waypoint` is not wired yet";
}

export const ambitWaypointPeer: Peer = {
  name: "ambit-waypoint",
  label: "ambit L4 + waypoint",
  l7: true,
  unavailable: waypointAvailable,
  start: startWaypointPeer,
};
