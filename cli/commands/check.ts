// `ambit check`: preflight (what `ambit up` needs from this machine) and,
// when a local mesh is up (or --admin names a controller), its health: the
// controller answers, every node's ztunnel is connected and has ACKed the
// current configuration, certificates are valid, no NACKs, no rejected
// objects. One line per check; each problem says what to do. Exit 1 on any.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { parseArgs } from "node:util";
import type { ProxyConnectionInfo } from "../../controller/push/connection-info.js";
import { readState } from "../../local/state.js";
import { resolveMeshId } from "../../local/supervisor-plan.js";
import { type AdminTarget, adminJsonAt, getAdmin, localTargets, type ZtunnelDump } from "../why/collect.js";

export const CHECK_HELP = `usage: ambit check [--pre] [--mesh-id ID] [--admin URL] [--json]

Preflight: root, Node.js version, the ip/iptables/nsenter commands, network
namespaces, iptables nat and mangle tables, and (when no mesh is up) the
controller's ports free on this host. Then, when a local mesh is up (or
--admin names a controller's admin URL, port 15014), its health: controller
reachable, every node's ztunnel connected and in sync (ACKed), certificates
valid, no NACKs, no rejected objects. Prints one line per check and, for each
problem, what to do; exits 1 when there is any. --pre: preflight only.

example:
  ambit check --pre
  ambit up examples/demo && ambit check
`;

export interface CheckResult {
  name: string;
  ok: boolean;
  detail?: string;
  /** What to do about it (problems only). */
  fix?: string;
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = `${dir}/${cmd}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

export async function preflight(opts: { ports: boolean }): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const root = process.geteuid?.() === 0;
  out.push(
    root
      ? { name: "running as root", ok: true }
      : {
          name: "running as root",
          ok: false,
          fix: "run ambit with sudo: network namespaces and iptables need root",
        },
  );
  const major = Number(process.versions.node.split(".")[0]);
  out.push(
    major >= 20
      ? { name: `Node.js ${process.versions.node}`, ok: true }
      : { name: `Node.js ${process.versions.node}`, ok: false, fix: "install Node.js 20 or later" },
  );
  const pkgs: Record<string, string> = { ip: "iproute2", iptables: "iptables", nsenter: "util-linux" };
  for (const cmd of ["ip", "iptables", "nsenter"]) {
    const p = which(cmd);
    out.push(
      p
        ? { name: `${cmd} found (${p})`, ok: true }
        : { name: `${cmd} found`, ok: false, fix: `apt-get install ${pkgs[cmd]}` },
    );
  }
  out.push(
    fs.existsSync("/proc/self/ns/net")
      ? { name: "kernel network namespaces", ok: true }
      : { name: "kernel network namespaces", ok: false, fix: "a kernel with CONFIG_NET_NS is needed" },
  );
  if (root && which("iptables")) {
    for (const table of ["nat", "mangle"]) {
      try {
        execFileSync("iptables", ["-t", table, "-S"], { stdio: "pipe", timeout: 5000 });
        out.push({ name: `iptables ${table} table`, ok: true });
      } catch (e) {
        const msg = ((e as { stderr?: Buffer }).stderr?.toString() ?? (e as Error).message)
          .trim()
          .split("\n")[0];
        out.push({
          name: `iptables ${table} table`,
          ok: false,
          detail: msg,
          fix: `load the kernel support (modprobe iptable_${table} or nf_tables) or install iptables with the nf_tables backend`,
        });
      }
    }
  }
  if (opts.ports) {
    for (const port of [15010, 15012, 15014]) {
      const free = await portFree(port);
      out.push(
        free
          ? { name: `port ${port} free on 127.0.0.1`, ok: true }
          : {
              name: `port ${port} free on 127.0.0.1`,
              ok: false,
              fix: `stop what listens on ${port} (ss -ltnp 'sport = :${port}') before running 'ambit controller' on this host`,
            },
      );
    }
  }
  return out;
}

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
        fix: "run 'ambit check' again in a few seconds; if it persists see 'ambit logs ztunnel-" + node + "'",
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
        fix: "rotation is late: see 'ambit logs ztunnel-" + node + "'",
      });
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
  const print = (rs: CheckResult[]) => {
    results.push(...rs);
    if (values.json) return;
    for (const r of rs)
      console.log(
        r.ok
          ? `ok    ${r.name}`
          : `FAIL  ${r.name}${r.detail ? `: ${r.detail}` : ""}\n      → ${r.fix ?? ""}`,
      );
  };
  const meshId = values.admin ? undefined : resolveMeshId(values["mesh-id"]);
  const state = meshId ? readState(meshId) : undefined;
  if (!values.json) console.log("preflight");
  print(await preflight({ ports: !state && !values.admin }));
  if (!values.pre) {
    if (values.admin) {
      if (!values.json) console.log(`\nhealth of the controller at ${values.admin}`);
      print(await health({ url: values.admin }, [], {}));
    } else if (state && meshId) {
      if (!values.json) console.log(`\nhealth of mesh ${meshId}`);
      const t = localTargets(meshId);
      print(
        await health(
          t.controller,
          state.layout.nodes.map((n) => n.name),
          t.ztunnels,
        ),
      );
    } else if (!values.json)
      console.log(`\nno local mesh '${meshId}' is up: health not checked (start one with 'ambit up DIR')`);
  }
  const problems = results.filter((r) => !r.ok).length;
  if (values.json) console.log(JSON.stringify({ ok: problems === 0, results }, null, 2));
  else console.log(problems === 0 ? "\nall checks passed" : `\n${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}
