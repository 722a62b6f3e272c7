// `ambit check`: preflight (what `ambit up` needs from this machine) and,
// when a local mesh is up (or --admin names a controller), its health: the
// controller answers, every node's ztunnel is connected and has ACKed the
// current configuration, certificates are valid, no NACKs, no rejected
// objects. One line per check; each problem says what to do. Exit 1 on any.
import { parseArgs } from "node:util";
import type { ProxyConnectionInfo } from "../../controller/push/connection-info.js";
import { readState } from "../../local/state.js";
import { resolveMeshId } from "../../local/supervisor-plan.js";
import { type CheckResult, preflight } from "../check/preflight.js";
import { Progress } from "../progress.js";
import { type AdminTarget, adminJsonAt, getAdmin, localTargets, type ZtunnelDump } from "../why/collect.js";

export const CHECK_HELP = `usage: ambit check [--pre] [--mesh-id ID] [--admin URL] [--json]

Preflight: root, Node.js and kernel versions, ip/nsenter, iptables (version
and backend), network namespaces, ambit's capture rules (REDIRECT, mark,
connmark, CONNMARK, a fwmark route) installed for real in a scratch network
namespace, the CNI plugins (bridge, host-local, loopback in /opt/cni/bin or
/usr/lib/cni), and (when no mesh is up) the controller's ports 15010, 15012,
15014 free. Then, when a local mesh is up (or --admin names a controller's
admin URL, port 15014), its health: controller reachable, no rejected
objects, every node's ztunnel connected and in sync (ACKed, no NACKs), its
certificates valid and not about to expire, every waypoint connected with no
NACKs. Prints one line per check and, for each problem, what to do; exits 1
when there is any. --pre: preflight only. --json: the results as JSON.

example:
  ambit check --pre
  ambit up examples/demo && ambit check
  ambit check --admin http://127.0.0.1:15014 --json
`;

export type { CheckResult } from "../check/preflight.js";
export { preflight } from "../check/preflight.js";

/** Health of a running mesh from the controller's admin (and the ztunnels', when local). */
export async function health(
  controller: AdminTarget,
  nodes: string[],
  ztunnels: Record<string, AdminTarget>,
  now = Date.now(),
): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  try {
    const r = await getAdmin(controller, "/ready");
    if (r.status !== 200) throw new Error(`/ready answered ${r.status}`);
    out.push({ name: "controller reachable", ok: true });
  } catch (e) {
    out.push({
      name: "controller reachable",
      ok: false,
      detail: (e as Error).message,
      fix: "see 'ambit logs controller'; 'ambit down' then 'ambit up DIR' restarts the mesh",
    });
    return out;
  }
  const errs = await adminJsonAt<{ errors: { message: string }[] }>(
    controller,
    "/debug/errors",
    "the controller",
  );
  if (errs.errors.length === 0) out.push({ name: "no rejected objects", ok: true });
  for (const e of errs.errors)
    out.push({
      name: "rejected object",
      ok: false,
      detail: e.message,
      fix: "fix that object and field in the YAML; the controller reloads it",
    });
  const proxies = await adminJsonAt<ProxyConnectionInfo[]>(controller, "/debug/proxies", "the controller");
  for (const node of nodes) {
    const conns = proxies.filter((p) => p.nodeName === node || p.nodeId.includes(`~${node}~`));
    if (conns.length === 0) {
      out.push({
        name: `ztunnel ${node} connected`,
        ok: false,
        fix: `see 'ambit logs ztunnel-${node}'; it reconnects by itself once the controller is reachable`,
      });
      continue;
    }
    const types = conns.flatMap((c) => c.types);
    const nacked = types.filter((t) => t.lastNack);
    const behind = types.filter((t) => !t.inSync);
    if (nacked.length === 0 && behind.length === 0)
      out.push({ name: `ztunnel ${node} connected and in sync (${types.length} types ACKed)`, ok: true });
    for (const t of nacked)
      out.push({
        name: `ztunnel ${node} NACKed ${t.typeUrl.split("/").pop()}`,
        ok: false,
        detail: t.lastNack?.message,
        fix: "the named object has a value the proxy refuses: fix it in the YAML, or report a bug with 'ambit config-dump'",
      });
    for (const t of behind.filter((x) => !x.lastNack))
      out.push({
        name: `ztunnel ${node} in sync for ${t.typeUrl.split("/").pop()}`,
        ok: false,
        detail: t.awaitingAck ? "waiting for its ACK" : "behind",
        fix: `run 'ambit check' again in a few seconds; if it persists see 'ambit logs ztunnel-${node}'`,
      });
  }
  for (const [node, target] of Object.entries(ztunnels)) {
    let d: ZtunnelDump;
    try {
      d = await adminJsonAt<ZtunnelDump>(target, "/config_dump", `ztunnel-${node}`);
    } catch (e) {
      out.push({
        name: `ztunnel ${node} admin`,
        ok: false,
        detail: (e as Error).message,
        fix: `see 'ambit logs ztunnel-${node}'`,
      });
      continue;
    }
    if (!d.ready)
      out.push({
        name: `ztunnel ${node} ready`,
        ok: false,
        fix: `see 'ambit logs ztunnel-${node}' (not ready: xDS not synced or a pod not captured)`,
      });
    for (const [type, v] of Object.entries(d.xds.perType))
      if (v.nacked > 0)
        out.push({
          name: `ztunnel ${node} applied ${type.split("/").pop()}`,
          ok: false,
          detail: `${v.nacked} NACK(s): ${v.lastError ?? ""}`,
          fix: "fix the object named in the error; the proxy keeps its last good state meanwhile",
        });
    const bad = d.certificates.filter((c) => c.state !== "valid" && c.state !== "rotating");
    const soon = d.certificates.filter(
      (c) => c.notAfter && Date.parse(c.notAfter) - now < 5 * 60_000 && c.state === "valid",
    );
    if (bad.length === 0 && soon.length === 0)
      out.push({ name: `ztunnel ${node} certificates valid (${d.certificates.length})`, ok: true });
    for (const c of bad)
      out.push({
        name: `certificate ${c.identity} on ${node}`,
        ok: false,
        detail: `${c.state}${c.lastError ? `: ${c.lastError}` : ""}`,
        fix: "the CA refused or did not answer: see 'ambit logs controller' and the pod's node assignment",
      });
    for (const c of soon)
      out.push({
        name: `certificate ${c.identity} on ${node}`,
        ok: false,
        detail: `expires at ${c.notAfter}`,
        fix: `rotation is late: see 'ambit logs ztunnel-${node}'`,
      });
  }
  return out;
}

/** Each waypoint answers on its admin port, is connected to the controller, and has NACKed nothing. */
export async function waypointHealth(waypoints: Record<string, AdminTarget>): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const [gw, target] of Object.entries(waypoints).sort(([a], [b]) => a.localeCompare(b))) {
    let d: { xds?: ZtunnelDump["xds"]; services?: unknown[] };
    try {
      d = await adminJsonAt(target, "/config_dump", `waypoint ${gw}`);
    } catch (e) {
      out.push({
        name: `waypoint ${gw} admin`,
        ok: false,
        detail: (e as Error).message,
        fix: `see 'ambit logs ${gw.split("/")[0]}/POD' for the waypoint's pod ('ambit status' lists it)`,
      });
      continue;
    }
    const nacks = Object.entries(d.xds?.perType ?? {}).filter(([, v]) => v.nacked > 0);
    if (!d.xds?.connected)
      out.push({
        name: `waypoint ${gw} connected`,
        ok: false,
        fix: "it reconnects by itself once the controller is reachable; see the waypoint pod's log",
      });
    for (const [type, v] of nacks)
      out.push({
        name: `waypoint ${gw} applied ${type.split("/").pop()}`,
        ok: false,
        detail: `${v.nacked} NACK(s): ${v.lastError ?? ""}`,
        fix: "fix the route or policy named in the error; the waypoint keeps its last good configuration meanwhile",
      });
    if (d.xds?.connected && nacks.length === 0)
      out.push({ name: `waypoint ${gw} connected, ${d.services?.length ?? 0} services, no NACKs`, ok: true });
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      pre: { type: "boolean" },
      "mesh-id": { type: "string" },
      admin: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(CHECK_HELP);
    return 0;
  }
  const results: CheckResult[] = [];
  const progress = new Progress();
  const print = (rs: CheckResult[]) => {
    results.push(...rs);
    if (values.json) return;
    progress.pause();
    for (const r of rs)
      console.log(
        r.ok
          ? `ok    ${r.name}`
          : `${r.warn ? "WARN" : "FAIL"}  ${r.name}${r.detail ? `: ${r.detail}` : ""}\n      → ${r.fix ?? ""}`,
      );
  };
  const step = (what: string) => progress.status(what);
  const meshId = values.admin ? undefined : resolveMeshId(values["mesh-id"]);
  const state = meshId ? readState(meshId) : undefined;
  if (!values.json) console.log("preflight");
  step("checking this machine");
  print(await preflight({ ports: !state && !values.admin, step }));
  if (!values.pre) {
    if (values.admin) {
      if (!values.json) console.log(`\nhealth of the controller at ${values.admin}`);
      step("asking the controller");
      print(await health({ url: values.admin }, [], {}));
    } else if (state && meshId) {
      if (!values.json) console.log(`\nhealth of mesh ${meshId}`);
      const t = localTargets(meshId);
      step("asking the controller and every ztunnel");
      print(
        await health(
          t.controller,
          state.layout.nodes.map((n) => n.name),
          t.ztunnels,
        ),
      );
      step("asking the waypoints");
      print(await waypointHealth(t.waypoints));
    } else if (!values.json)
      console.log(`\nno local mesh '${meshId}' is up: health not checked (start one with 'ambit up DIR')`);
  }
  progress.done();
  const problems = results.filter((r) => !r.ok && !r.warn).length;
  if (values.json) console.log(JSON.stringify({ ok: problems === 0, results }, null, 2));
  else console.log(problems === 0 ? "\nall checks passed" : `\n${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}
