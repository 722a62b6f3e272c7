// `ambit why`'s answer as text: the verdict first, then one line per hop.
import type { EndpointAnswer, WhyAnswer } from "./engine.js";

function authzLine(e: EndpointAnswer): string {
  if (e.strictRefused)
    return `${e.enforcedBy}: PeerAuthentication STRICT refuses plain text (before authorization)`;
  if (!e.authz) return "no authorization: the destination is not enrolled";
  const d = e.authz;
  const who = e.peer.identity
    ? `peer ${e.peer.identity} from ${e.peer.ip}`
    : `no peer identity (plain text) from ${e.peer.ip}`;
  const what =
    d.reason === "deny_policy"
      ? `DENY policy ${d.policy}, rule ${d.rule} matches → denied`
      : d.reason === "allow_policy"
        ? `ALLOW policy ${d.policy}, rule ${d.rule} matches → allowed`
        : d.reason === "no_allow_policies"
          ? "no DENY matches and no ALLOW policy applies → allowed (default)"
          : "ALLOW policies apply and none matches → denied";
  const dry =
    d.dryRun
      ?.map((x) => `; dry-run ${x.action.toUpperCase()} ${x.policy} rule ${x.rule} would match`)
      .join("") ?? "";
  return `${e.enforcedBy}: ${who}: ${what}${dry}`;
}

export function renderWhy(a: WhyAnswer): string {
  const out: string[] = [];
  out.push(`${a.verdict.toUpperCase()}: ${a.summary}`);
  out.push("");
  const s = a.source;
  const cap =
    s.captured === undefined
      ? "capture unknown (ztunnel did not answer)"
      : s.captured
        ? `captured by ${s.ztunnel}`
        : "NOT captured";
  out.push(`source       ${s.pod} ${s.ip} on ${s.node}: ${s.enrolled ? "enrolled" : "not enrolled"}, ${cap}`);
  out.push(`identity     ${s.identity}`);
  const d = a.destination;
  out.push(
    `destination  ${d.kind === "service" ? `Service ${d.service} (VIP ${d.vip}:${d.port})` : d.kind === "workload" ? `pod ${d.pod} (${d.ip}:${d.port})` : `${d.ip}:${d.port} (not in the mesh)`}${d.kind !== "outside" && d.waypoint ? `, waypoint ${d.waypoint}` : ""}`,
  );
  if (a.plan) {
    const p = a.plan;
    out.push(
      `plan         ${s.ztunnel}: ${p.kind === "hbone" ? `HBONE to ${p.tunnel}${p.viaWaypoint ? " (the waypoint)" : ""}, expecting ${p.peerIdentity}` : `${p.kind} (${p.reason})`}`,
    );
  }
  if (a.waypoint) {
    const w = a.waypoint;
    const r = w.request;
    let line = `waypoint     ${w.gateway} at ${w.ip} (${w.identity}): `;
    if (!r) line += "configuration not known";
    else if (r.outcome === "routed")
      line += `route ${r.route}${r.filters.length ? `, filters ${r.filters.join(", ")}` : ""}${r.policy ? `, allowed by ${r.policy}` : ""} → ${r.backends.map((b) => `${b.cluster} ${b.percent}%`).join(", ")}`;
    else if (r.outcome === "denied") line += `${r.status} ${r.reason}`;
    else if (r.outcome === "no-route") line += "404: no route matches";
    else if (r.outcome === "redirect") line += `redirect ${r.status} by ${r.route}`;
    else line += `fault by ${r.route}: ${JSON.stringify({ abort: r.abort, delay: r.delay })}`;
    out.push(line);
  }
  for (const e of a.endpoints) {
    out.push(
      `endpoint     ${e.pod} ${e.ip}:${e.port} on ${e.node} (${e.identity}) over ${e.transport}: ${e.verdict}`,
    );
    out.push(`  authz      ${authzLine(e)}`);
  }
  out.push(`mtls         ${a.mtls}`);
  for (const n of a.notes) out.push(`note: ${n}`);
  return out.join("\n");
}
