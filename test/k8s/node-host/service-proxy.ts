// Services for the test nodes, as kube-proxy (iptables mode) and a cluster
// DNS would give them, reduced to what the tests need:
//   - ClusterIP:port → a ready endpoint, by DNAT in each node's namespace
//     (nat PREROUTING for pods' traffic, OUTPUT for host-network pods),
//     spread with `-m statistic`;
//   - names: /etc/hosts lines for <svc>.<ns>.svc.cluster.local, <svc>.<ns>.svc,
//     <svc>.<ns>, and <svc> for pods of the same namespace.
// Plans are pure; the node host applies them whenever Services or
// EndpointSlices change.
import type { EndpointSlice, Service } from "../../../controller/provider/objects.js";

export interface ServiceRule {
  vip: string;
  port: number;
  protocol: "tcp" | "udp";
  endpoints: { ip: string; port: number }[];
}

/** targetPort resolution is the EndpointSlice's: its ports carry the numbers, by port name (pure). */
export function serviceRules(services: Service[], slices: EndpointSlice[]): ServiceRule[] {
  const rules: ServiceRule[] = [];
  for (const svc of services) {
    const vip = svc.spec.clusterIP;
    if (!vip || vip === "None" || svc.spec.type === "ExternalName") continue;
    const mine = slices.filter(
      (s) =>
        s.metadata.namespace === svc.metadata.namespace &&
        s.metadata.labels?.["kubernetes.io/service-name"] === svc.metadata.name &&
        s.addressType === "IPv4",
    );
    for (const sp of svc.spec.ports ?? []) {
      const protocol = (sp.protocol ?? "TCP") === "UDP" ? "udp" : "tcp";
      if (sp.protocol === "SCTP") continue;
      const endpoints: ServiceRule["endpoints"] = [];
      for (const slice of mine) {
        const p = (slice.ports ?? []).find((x) => (x.name ?? "") === (sp.name ?? ""));
        if (!p?.port) continue;
        for (const ep of slice.endpoints ?? []) {
          if (ep.conditions?.ready === false) continue;
          for (const ip of ep.addresses) endpoints.push({ ip, port: p.port });
        }
      }
      endpoints.sort((a, b) => `${a.ip}:${a.port}`.localeCompare(`${b.ip}:${b.port}`));
      rules.push({ vip, port: sp.port, protocol, endpoints });
    }
  }
  return rules.sort((a, b) => `${a.vip}:${a.port}`.localeCompare(`${b.vip}:${b.port}`));
}

/**
 * The shell script that installs the rules in one node's namespace (pure):
 * chain AMBIT-SERVICES is rewritten as a whole (iptables-restore --noflush
 * flushes a declared chain), and jumped to from PREROUTING and OUTPUT.
 * A Service without ready endpoints rejects, as kube-proxy does.
 */
export function serviceScript(rules: ServiceRule[]): string {
  const lines = ["*nat", ":AMBIT-SERVICES - [0:0]"];
  const filter = ["*filter", ":AMBIT-SERVICES-REJECT - [0:0]"];
  for (const r of rules) {
    const match = `-d ${r.vip}/32 -p ${r.protocol} -m ${r.protocol} --dport ${r.port}`;
    if (r.endpoints.length === 0) {
      filter.push(`-A AMBIT-SERVICES-REJECT ${match} -j REJECT`);
      continue;
    }
    r.endpoints.forEach((ep, i) => {
      const left = r.endpoints.length - i;
      const stat = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(5)}` : "";
      lines.push(`-A AMBIT-SERVICES ${match}${stat} -j DNAT --to-destination ${ep.ip}:${ep.port}`);
    });
  }
  lines.push("COMMIT");
  filter.push("COMMIT");
  const jump = (table: string, chain: string, target: string) =>
    `iptables -w 5 -t ${table} -C ${chain} -j ${target} 2>/dev/null || iptables -w 5 -t ${table} -I ${chain} -j ${target}`;
  return [
    "iptables-restore -w 5 --noflush <<'AMBIT_RULES'",
    ...lines,
    ...filter,
    "AMBIT_RULES",
    jump("nat", "PREROUTING", "AMBIT-SERVICES"),
    jump("nat", "OUTPUT", "AMBIT-SERVICES"),
    jump("filter", "FORWARD", "AMBIT-SERVICES-REJECT"),
    jump("filter", "OUTPUT", "AMBIT-SERVICES-REJECT"),
  ].join("\n");
}

/** /etc/hosts of a pod in `namespace` (pure). */
export function hostsFile(
  pod: { hostname: string; ip: string; namespace: string },
  services: Service[],
  clusterDomain = "cluster.local",
): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    `${pod.ip}\t${pod.hostname}`,
  ];
  for (const svc of [...services].sort((a, b) =>
    `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`),
  )) {
    const vip = svc.spec.clusterIP;
    if (!vip || vip === "None") continue;
    const n = svc.metadata.name;
    const ns = svc.metadata.namespace;
    const names = [`${n}.${ns}.svc.${clusterDomain}`, `${n}.${ns}.svc`, `${n}.${ns}`];
    if (ns === pod.namespace) names.push(n);
    lines.push(`${vip}\t${names.join(" ")}`);
  }
  return `${lines.join("\n")}\n`;
}
