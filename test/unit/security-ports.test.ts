// Admin surfaces are local by default: the controller's admin HTTP and the
// ztunnel's admin (config dump, certificates, log level), metrics and
// readiness bind to 127.0.0.1 unless an operator says otherwise, so a pod
// cannot reach another pod's (or the node's) ztunnel admin port. Checked
// through the config modules' own parse functions, against the manifests
// (which must not widen them), and by binding a real socket on the default.
import { once } from "node:events";
import { readdirSync, readFileSync, statSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import t from "tap";
import { parseControllerConfig } from "../../controller/config.js";
import { parseZtunnelConfig } from "../../ztunnel/config.js";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

t.test("controller: admin binds to localhost by default", async (t) => {
  const cfg = parseControllerConfig(["--config-dir", "examples/demo"], {});
  if (cfg === "help") throw new Error("unexpected help");
  t.equal(cfg.adminHost, "127.0.0.1");
  // The gRPC ports (xDS, CA) are meant to be reached by ztunnels on other nodes.
  t.equal(cfg.listenHost, "0.0.0.0", "xDS/CA listen on all addresses (authenticated by token or mTLS)");
  const widened = parseControllerConfig(["--config-dir", "x"], { AMBIT_ADMIN_HOST: "0.0.0.0" });
  t.equal(widened !== "help" && widened.adminHost, "0.0.0.0", "only an explicit setting widens it");
});

t.test("ztunnel: admin, metrics and readiness bind to localhost by default", async (t) => {
  const cfg = parseZtunnelConfig(["--node", "node-1", "--xds", "127.0.0.1:15010"], {});
  if (cfg === "help") throw new Error("unexpected help");
  t.equal(cfg.adminHost, "127.0.0.1");
  t.same([cfg.adminPort, cfg.metricsPort, cfg.readinessPort], [15000, 15020, 15021]);
});

t.test("the default admin host is loopback-only on a real socket", async (t) => {
  const cfg = parseZtunnelConfig(["--node", "n", "--xds", "127.0.0.1:1"], {});
  if (cfg === "help") throw new Error("unexpected help");
  const s = net.createServer();
  s.listen(0, cfg.adminHost);
  await once(s, "listening");
  t.teardown(() => s.close());
  const addr = s.address() as net.AddressInfo;
  t.ok(LOOPBACK.has(addr.address), `bound to ${addr.address}`);
});

function files(dir: string): string[] {
  let out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(files(p));
    else if (/\.ya?ml$/.test(e)) out.push(p);
  }
  return out;
}

t.test("manifests do not widen the admin bind address", async (t) => {
  const offenders: string[] = [];
  for (const f of files(join(process.cwd(), "manifests"))) {
    const text = readFileSync(f, "utf8");
    // --admin-host VALUE / --admin-host=VALUE, or AMBIT_ADMIN_HOST with a value: on the next line.
    for (const m of text.matchAll(/--admin-host[= ]"?([^"\s,\]]+)/g))
      if (!LOOPBACK.has(m[1]!)) offenders.push(`${f}: ${m[0]}`);
    for (const m of text.matchAll(/AMBIT_ADMIN_HOST\s*\n\s*value:\s*"?([^"\s]+)/g))
      if (!LOOPBACK.has(m[1]!)) offenders.push(`${f}: ${m[0]}`);
  }
  t.same(offenders, [], "no manifest binds admin beyond loopback");
});
