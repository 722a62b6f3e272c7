// In-pod traffic capture: the iptables rules and policy routes that ztunnel
// installs inside an enrolled pod's network namespace (Istio's in-pod mode).
//
// planCapture() is pure data; applyCapture()/removeCapture() run it inside a
// namespace with one `nsenter --net=<path> sh -ec <script>` each. Rules live in
// ambit's own chains (flushed and refilled on every apply), and the jumps into
// them are added only when missing, so applying twice is the same as once.
//
// What the rules do (IPv4; the mesh is IPv4):
//   nat OUTPUT      pod's own new TCP connections -> 127.0.0.1:15001 (outbound),
//                   DNS (udp/tcp 53) -> 127.0.0.1:15053;
//                   skipped: ztunnel's sockets (mark 0x539), traffic over lo.
//   (TCP rules match only SYNs: connections that were open before capture was
//   installed are picked up by conntrack mid-stream and must pass untouched.)
//   nat PREROUTING  new TCP connections arriving from outside -> :15006 (inbound
//                   plaintext), except 15008 (HBONE, served in the pod).
//   mangle          ztunnel's inbound connections to the app may use the caller's
//                   IP as source (IP_TRANSPARENT). Their connections are
//                   connmarked 0x111 and the app's replies carry that mark, so
//                   a policy route delivers them locally instead of sending
//                   them out of eth0.
import { runCommand } from "./command.js";

export const ZTUNNEL_MARK = 0x539;
export const MARK_MASK = 0xfff;
export const TRANSPARENT_CONNMARK = 0x111;
export const TRANSPARENT_ROUTE_TABLE = 133;
/** Rule priority of the policy route; below the main table's 32766. */
export const TRANSPARENT_RULE_PRIORITY = 32764;

export const PORTS = {
  outbound: 15001,
  inbound: 15006,
  hbone: 15008,
  dns: 15053,
} as const;

export const CHAIN_PREFIX = "AMBIT_";

export interface CaptureOptions {
  /** Redirect DNS (udp and tcp 53) to 15053. Default true. */
  dns?: boolean;
  /** Mark of ztunnel's own sockets. Default 0x539. */
  mark?: number;
  /** Extra inbound TCP ports left alone (not sent to 15006). */
  inboundExcludePorts?: number[];
  /** Extra outbound destination CIDRs left alone (not sent to 15001). */
  outboundExcludeCidrs?: string[];
}

export interface ChainJump {
  table: "nat" | "mangle";
  /** Built-in chain, e.g. OUTPUT. */
  from: string;
  /** ambit's chain, e.g. AMBIT_OUTPUT. */
  to: string;
}

export interface CapturePlan {
  /** iptables-restore --noflush input: declares (and so flushes) ambit's chains, then fills them. */
  restore: string;
  jumps: ChainJump[];
  /** `ip rule` arguments (after `ip rule add`/`del`). */
  ipRules: string[][];
  /** `ip route` arguments (after `ip route replace`), all in the transparent table. */
  ipRoutes: string[][];
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** The capture rules for one pod namespace (the same for every pod: they live inside it). */
export function planCapture(opts: CaptureOptions = {}): CapturePlan {
  const mark = `${hex(opts.mark ?? ZTUNNEL_MARK)}/${hex(MARK_MASK)}`;
  const connmark = `${hex(TRANSPARENT_CONNMARK)}/${hex(MARK_MASK)}`;
  const dns = opts.dns ?? true;
  const nat: string[] = [
    "*nat",
    ":AMBIT_OUTPUT - [0:0]",
    ":AMBIT_PREROUTING - [0:0]",
    // Outbound: what the pod's applications open.
    `-A AMBIT_OUTPUT -m mark --mark ${mark} -j RETURN`,
    `-A AMBIT_OUTPUT -p tcp -m mark --mark ${connmark} -j RETURN`,
  ];
  if (dns) {
    nat.push(
      `-A AMBIT_OUTPUT ! -d 127.0.0.1/32 -p udp --dport 53 -j REDIRECT --to-ports ${PORTS.dns}`,
      `-A AMBIT_OUTPUT ! -d 127.0.0.1/32 -p tcp --syn --dport 53 -j REDIRECT --to-ports ${PORTS.dns}`,
    );
  }
  for (const cidr of opts.outboundExcludeCidrs ?? []) nat.push(`-A AMBIT_OUTPUT -d ${cidr} -j RETURN`);
  nat.push(
    // To the pod's own addresses (probes, localhost): not mesh traffic.
    "-A AMBIT_OUTPUT -o lo -j RETURN",
    `-A AMBIT_OUTPUT -p tcp --syn -j REDIRECT --to-ports ${PORTS.outbound}`,
    // Inbound: what arrives from other pods and nodes.
    "-A AMBIT_PREROUTING -i lo -j RETURN",
    `-A AMBIT_PREROUTING -p tcp --dport ${PORTS.hbone} -j RETURN`,
  );
  for (const port of opts.inboundExcludePorts ?? [])
    nat.push(`-A AMBIT_PREROUTING -p tcp --dport ${port} -j RETURN`);
  nat.push(`-A AMBIT_PREROUTING -p tcp --syn -j REDIRECT --to-ports ${PORTS.inbound}`, "COMMIT");

  const mangle = [
    "*mangle",
    ":AMBIT_OUTPUT - [0:0]",
    ":AMBIT_PREROUTING - [0:0]",
    // A transparent ztunnel connection to the app arrives over lo with
    // ztunnel's mark: remember it on the connection...
    `-A AMBIT_PREROUTING -i lo -m mark --mark ${mark} -j CONNMARK --set-xmark ${connmark}`,
    // ...and mark the app's replies so the policy route keeps them local.
    `-A AMBIT_OUTPUT -m connmark --mark ${connmark} -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff`,
    "COMMIT",
  ];

  return {
    restore: `${[...nat, ...mangle].join("\n")}\n`,
    jumps: [
      { table: "nat", from: "OUTPUT", to: "AMBIT_OUTPUT" },
      { table: "nat", from: "PREROUTING", to: "AMBIT_PREROUTING" },
      { table: "mangle", from: "OUTPUT", to: "AMBIT_OUTPUT" },
      { table: "mangle", from: "PREROUTING", to: "AMBIT_PREROUTING" },
    ],
    ipRules: [
      [
        "fwmark",
        connmark,
        "pref",
        String(TRANSPARENT_RULE_PRIORITY),
        "lookup",
        String(TRANSPARENT_ROUTE_TABLE),
      ],
    ],
    ipRoutes: [["local", "0.0.0.0/0", "dev", "lo", "table", String(TRANSPARENT_ROUTE_TABLE)]],
  };
}

/** Quotes one word for sh. */
function sh(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** How `ip rule list` prints a rule given as `ip rule add` arguments ("pref N" first, as "N:"). */
function ruleListing(args: readonly string[]): string {
  const rest = [...args];
  const i = rest.indexOf("pref");
  const pref = i >= 0 ? rest.splice(i, 2)[1] : undefined;
  return `${pref !== undefined ? `${pref}:\t` : ""}from all ${rest.join(" ")}`;
}

/** The shell script that installs the plan (idempotent). */
export function renderApplyScript(plan: CapturePlan): string {
  const lines = ["iptables-restore -w 5 --noflush <<'AMBIT_RULES'", plan.restore.trimEnd(), "AMBIT_RULES"];
  for (const j of plan.jumps) {
    lines.push(
      `iptables -w 5 -t ${j.table} -C ${j.from} -j ${j.to} 2>/dev/null || iptables -w 5 -t ${j.table} -I ${j.from} 1 -j ${j.to}`,
    );
  }
  for (const r of plan.ipRoutes) lines.push(`ip route replace ${r.map(sh).join(" ")}`);
  for (const r of plan.ipRules) {
    const args = r.map(sh).join(" ");
    // `ip rule add` is not idempotent, and deleting first would cut the
    // routing of a running ztunnel's connections (an upgrade installs this
    // while the old one serves): add only when absent, and a concurrent
    // installer's copy counts as present.
    lines.push(
      `ip rule add ${args} 2>/dev/null || ip rule list | grep -Fq ${sh(ruleListing(r))} || ip rule add ${args}`,
    );
  }
  // Zero-drop upgrades: when the old ztunnel closes its SO_REUSEPORT
  // listener, connections still in its accept queue move to the new one's
  // instead of being reset (Linux >= 5.14; per namespace; skipped if absent).
  lines.push(`if [ -w ${TCP_MIGRATE_REQ} ]; then echo 1 > ${TCP_MIGRATE_REQ}; fi`);
  return `${lines.join("\n")}\n`;
}

const TCP_MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req";

/** The shell script that removes everything the plan installed; fine if some is already gone. */
export function renderRemoveScript(plan: CapturePlan): string {
  const lines: string[] = [];
  for (const j of plan.jumps) {
    lines.push(`while iptables -w 5 -t ${j.table} -D ${j.from} -j ${j.to} 2>/dev/null; do :; done`);
  }
  for (const j of plan.jumps) {
    lines.push(
      `iptables -w 5 -t ${j.table} -F ${j.to} 2>/dev/null || true`,
      `iptables -w 5 -t ${j.table} -X ${j.to} 2>/dev/null || true`,
    );
  }
  for (const r of plan.ipRules)
    lines.push(`while ip rule del ${r.map(sh).join(" ")} 2>/dev/null; do :; done`);
  for (const _ of plan.ipRoutes)
    lines.push(`ip route flush table ${TRANSPARENT_ROUTE_TABLE} 2>/dev/null || true`);
  return `${lines.join("\n")}\n`;
}

async function runInNetns(netnsPath: string, script: string): Promise<void> {
  await runCommand(["nsenter", `--net=${netnsPath}`, "--", "sh", "-ec", script]);
}

/** Installs (or re-installs) capture inside the namespace. */
export async function applyCapture(netnsPath: string, plan: CapturePlan = planCapture()): Promise<void> {
  await runInNetns(netnsPath, renderApplyScript(plan));
}

/** Removes capture from the namespace. */
export async function removeCapture(netnsPath: string, plan: CapturePlan = planCapture()): Promise<void> {
  await runInNetns(netnsPath, renderRemoveScript(plan));
}

/** Whether ambit's capture chains exist in the namespace. */
export async function hasCapture(netnsPath: string): Promise<boolean> {
  const r = await runCommand(
    ["nsenter", `--net=${netnsPath}`, "--", "iptables", "-w", "5", "-t", "nat", "-S", "AMBIT_OUTPUT"],
    {
      allowFail: true,
    },
  );
  return r.code === 0;
}
