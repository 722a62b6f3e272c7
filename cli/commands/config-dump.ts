// `ambit config-dump ztunnel NODE | waypoint NS/NAME`: what that proxy holds
// now, from its admin endpoint: workloads, services, policies, certificates
// with expiry, xDS state (and for a waypoint its services, routes and
// clusters). A table by default, the raw dump with --json.
import { parseArgs } from "node:util";
import type { WaypointService } from "../../core/model/waypoint.js";
import { resolveMeshId } from "../../local/supervisor-plan.js";
import { type AdminTarget, adminJsonAt, localTargets, type ZtunnelDump } from "../why/collect.js";

export const CONFIG_DUMP_HELP = `usage: ambit config-dump ztunnel NODE | waypoint NS/NAME [--json] [--mesh-id ID | --admin URL]

Shows what one proxy holds now, read from its admin endpoint: for a ztunnel
the workloads, services and authorization policies it enforces, the pods it
captures, its certificates with expiry and its xDS state (ACKs, NACKs); for
a waypoint its services with their routes, clusters and endpoints. The local
mesh's admin sockets are found from its state file; for a cluster give the
proxy's admin URL (port 15000, e.g. after kubectl port-forward).

example:
  ambit config-dump ztunnel node-1
  ambit config-dump waypoint shop/waypoint --json
  ambit config-dump ztunnel node-a --admin http://127.0.0.1:15000
`;

function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join("  "))
    .join("\n");
}

function expiresIn(iso: string | undefined, now: number): string {
  if (!iso) return "";
  const s = Math.round((Date.parse(iso) - now) / 1000);
  if (s < 0) return `expired ${-s}s ago`;
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
    : `${Math.floor(s / 60)}m${s % 60}s`;
}

export function renderZtunnelDump(d: ZtunnelDump, now = Date.now()): string {
  const out: string[] = [];
  out.push(
    `ztunnel ${d.node}: ${d.ready ? "ready" : "NOT ready"}, xDS ${d.xds.connected ? "connected" : "NOT connected"}, ${d.hboneSessions} HBONE sessions, connections ${JSON.stringify(d.connections)}`,
  );
  out.push("");
  out.push(
    table([
      ["XDS TYPE", "RESOURCES", "ACKED", "NACKED", "LAST ERROR"],
      ...Object.entries(d.xds.perType).map(([t, v]) => [
        t.replace(/^type\.googleapis\.com\//, ""),
        String(v.resources),
        String(v.acked),
        String(v.nacked),
        v.lastError ?? "",
      ]),
    ]),
  );
  out.push("");
  out.push(
    table([
      ["WORKLOAD", "IP", "NODE", "PROTOCOL", "IDENTITY", "SERVICES"],
      ...d.state.workloads.map((w) => [
        `${w.namespace}/${w.name}`,
        w.ips.join(","),
        w.node,
        w.tunnel === "hbone" ? "HBONE" : "TCP",
        `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`,
        Object.keys(w.services)
          .map((k) => k.split("/")[1]?.split(".")[0] ?? k)
          .join(","),
      ]),
    ]),
  );
  out.push("");
  out.push(
    table([
      ["SERVICE", "VIP", "PORTS", "WAYPOINT"],
      ...d.state.services.map((s) => [
        s.hostname,
        s.vips.join(",") || "(headless)",
        s.ports
          .map((p) =>
            p.targetPort && p.targetPort !== p.port ? `${p.port}->${p.targetPort}` : String(p.port),
          )
          .join(","),
        s.waypoint ? (s.waypoint.hostname?.hostname ?? s.waypoint.address ?? "") : "",
      ]),
    ]),
  );
  out.push("");
  if (d.state.policies.length === 0) out.push("no authorization policies");
  else
    out.push(
      table([
        ["POLICY", "SCOPE", "ACTION", "RULES"],
        ...d.state.policies.map((p) => [
          `${p.namespace}/${p.name}`,
          p.scope,
          p.action.toUpperCase() + (p.dryRun ? " (dry-run)" : ""),
          String(p.rules.length),
        ]),
      ]),
    );
  out.push("");
  out.push(
    table([["CAPTURED POD", "IP", "NETNS"], ...d.enrolledPods.map((p) => [p.key, p.ip, p.netnsPath])]),
  );
  out.push("");
  out.push(
    table([
      ["CERTIFICATE", "STATE", "EXPIRES IN", "ROTATES AT", "ERROR"],
      ...d.certificates.map((c) => [
        c.identity,
        c.state,
        expiresIn(c.notAfter, now),
        c.rotateAt ?? "",
        c.lastError ?? "",
      ]),
    ]),
  );
  return out.join("\n");
}

interface WaypointDump {
  gateway: string;
  identity?: string;
  xds?: ZtunnelDump["xds"];
  services: WaypointService[];
  clusters: {
    name: string;
    inflight: number;
    endpoints: { address: string; active: number; ejected: boolean }[];
  }[];
}

/** A route's filters, then its timeout and retry policy, e.g. "RequestMirror,timeout=3000ms,retry=2x[503]". */
function routeExtras(r: WaypointService["routes"][number]): string[] {
  const out: string[] = r.filters.map((f) => f.type);
  if (r.timeouts?.requestMs) out.push(`timeout=${r.timeouts.requestMs}ms`);
  if (r.timeouts?.backendRequestMs) out.push(`backendTimeout=${r.timeouts.backendRequestMs}ms`);
  if (r.retry?.attempts)
    out.push(
      `retry=${r.retry.attempts}x[${[...r.retry.codes, ...r.retry.grpcCodes.map((c) => `grpc${c}`)].join(" ")}]`,
    );
  return out;
}

export function renderWaypointDump(d: WaypointDump): string {
  const out: string[] = [];
  out.push(
    `waypoint ${d.gateway}${d.identity ? ` (${d.identity})` : ""}${d.xds ? `, xDS ${d.xds.connected ? "connected" : "NOT connected"}` : ""}`,
  );
  for (const s of d.services) {
    out.push("");
    out.push(
      `service ${s.hostname} (${s.vips.join(",") || "headless"}) ports ${s.ports.map((p) => `${p.port}/${p.protocol}`).join(",")}`,
    );
    if (s.routes.length === 0) out.push("  no routes: requests go to the service itself");
    else
      out.push(
        table([
          ["  ROUTE", "MATCH", "FILTERS", "BACKENDS"],
          ...s.routes.map((r) => [
            `  ${r.name}`,
            JSON.stringify(r.match),
            routeExtras(r).join(",") || "-",
            r.backends.map((b) => `${b.cluster}*${b.weight}`).join(",") || "-",
          ]),
        ]),
      );
    if (s.authz.length) out.push(`  policies: ${s.authz.map((p) => `${p.action} ${p.name}`).join(", ")}`);
  }
  out.push("");
  out.push(
    table([
      ["CLUSTER", "ENDPOINTS", "INFLIGHT"],
      ...d.clusters.map((c) => [
        c.name,
        c.endpoints.map((e) => `${e.address}${e.ejected ? " (ejected)" : ""}`).join(",") || "-",
        String(c.inflight),
      ]),
    ]),
  );
  return out.join("\n");
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      json: { type: "boolean" },
      "mesh-id": { type: "string" },
      admin: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(CONFIG_DUMP_HELP);
    return 0;
  }
  const [kind, name] = positionals;
  if ((kind !== "ztunnel" && kind !== "waypoint") || !name || positionals.length !== 2) {
    console.error(CONFIG_DUMP_HELP);
    return 2;
  }
  let target: AdminTarget | undefined;
  if (values.admin) target = { url: values.admin };
  else {
    const t = localTargets(resolveMeshId(values["mesh-id"]));
    target = kind === "ztunnel" ? t.ztunnels[name] : t.waypoints[name];
    if (!target) {
      const known = Object.keys(kind === "ztunnel" ? t.ztunnels : t.waypoints);
      console.error(
        `ambit config-dump: no ${kind} '${name}' in mesh ${t.meshId} (known: ${known.join(", ") || "none"})`,
      );
      return 1;
    }
  }
  const what = `${kind} ${name}`;
  const dump = await adminJsonAt<unknown>(target, "/config_dump", what);
  if (values.json) console.log(JSON.stringify(dump, null, 2));
  else
    console.log(
      kind === "ztunnel" ? renderZtunnelDump(dump as ZtunnelDump) : renderWaypointDump(dump as WaypointDump),
    );
  return 0;
}
