// `ambit config-dump` against a live local mesh (the L7 fixture: a waypoint
// for namespace shop, a 90/10 canary route on reviews, a DENY on /admin):
// the waypoint's dump (found through the state file's waypointAdmin, read in
// the waypoint pod's namespace) shows the canary route with its weights,
// the L7 policy and clusters whose endpoints are the real pods' addresses;
// each ztunnel's dump shows the mesh's workloads at their real IPs and its
// node's certificate with an expiry about 24 h ahead, as JSON and as tables.
// `ambit check` sees the waypoint healthy.
import t from "tap";
import { copyFixture } from "./l7-fixture.js";
import { ambit, testMeshDirs } from "./mesh-fixture.js";
import { needsRoot } from "./netns-fixture.js";

interface WaypointDumpJson {
  gateway: string;
  identity: string;
  xds: { connected: boolean };
  services: {
    hostname: string;
    routes: { name: string; backends: { cluster: string; weight: number }[] }[];
    authz: { name: string; action: string }[];
  }[];
  clusters: { name: string; endpoints: { address: string }[] }[];
}

interface ZtunnelDumpJson {
  node: string;
  state: { workloads: { namespace: string; name: string; ips: string[]; node: string }[] };
  enrolledPods: { key: string; ip: string }[];
  certificates: { identity: string; state: string; notAfter?: string }[];
}

t.test(
  "config-dump of a waypoint and of ztunnels in a live mesh",
  { skip: needsRoot, timeout: 150_000 },
  async (t) => {
    const { runDir, dir, meshId } = testMeshDirs(t, "cfgdump");
    copyFixture(dir);
    const up = await ambit(runDir, ["up", dir, "--nodes", "2", "--mesh-id", meshId, "--timeout", "90"]);
    t.equal(up.code, 0, "ambit up", { stderr: up.stderr });
    if (up.code !== 0) return;
    const status = JSON.parse((await ambit(runDir, ["status", "--json", "--mesh-id", meshId])).stdout) as {
      pods: { key: string; ip: string; node: string }[];
    };
    const ipOf = (key: string) => status.pods.find((p) => p.key === key)?.ip as string;
    t.ok(ipOf("shop/reviews-v1") && ipOf("shop/reviews-v2"), "the canary's pods have IPs");

    // --- the waypoint ---
    const wj = await ambit(runDir, [
      "config-dump",
      "waypoint",
      "shop/waypoint",
      "--json",
      "--mesh-id",
      meshId,
    ]);
    t.equal(wj.code, 0, "config-dump waypoint --json", { stderr: wj.stderr });
    const w = JSON.parse(wj.stdout) as WaypointDumpJson;
    t.equal(w.gateway, "shop/waypoint");
    t.equal(w.identity, "spiffe://cluster.local/ns/shop/sa/waypoint");
    t.equal(w.xds.connected, true, "the waypoint is connected to the controller");
    const reviews = w.services.find((s) => s.hostname === "reviews.shop.svc.cluster.local");
    t.ok(reviews, "the waypoint serves reviews");
    const split = reviews?.routes.find((r) => r.backends.length === 2);
    t.ok(split, "the canary route has two backends");
    const weightOf = (svc: string) =>
      split?.backends.find((b) => b.cluster.includes(`${svc}.shop.svc.cluster.local`))?.weight;
    t.equal(weightOf("reviews-v1"), 90, "reviews-v1 at 90");
    t.equal(weightOf("reviews-v2"), 10, "reviews-v2 at 10");
    t.ok(
      reviews?.routes.some((r) => r.backends.length === 1 && r.backends[0]!.cluster.includes("reviews-v2")),
      "the x-canary rule pins reviews-v2",
    );
    t.ok(
      reviews?.authz.some((p) => p.name.includes("reviews-no-admin")),
      "the L7 DENY policy applies to reviews",
    );
    const endpointsOf = (svc: string) =>
      w.clusters
        .filter((c) => c.name.includes(`${svc}.shop.svc.cluster.local`))
        .flatMap((c) => c.endpoints.map((e) => e.address));
    t.ok(
      endpointsOf("reviews-v1").some((a) => a.startsWith(`${ipOf("shop/reviews-v1")}:`)),
      "the reviews-v1 cluster's endpoint is the pod's address",
      { clusters: w.clusters },
    );
    t.ok(endpointsOf("reviews-v2").some((a) => a.startsWith(`${ipOf("shop/reviews-v2")}:`)));

    const wt = await ambit(runDir, ["config-dump", "waypoint", "shop/waypoint", "--mesh-id", meshId]);
    t.equal(wt.code, 0, "config-dump waypoint (table)", { stderr: wt.stderr });
    t.match(
      wt.stdout,
      /^waypoint shop\/waypoint \(spiffe:\/\/cluster\.local\/ns\/shop\/sa\/waypoint\), xDS connected/,
    );
    t.match(wt.stdout, /^service reviews\.shop\.svc\.cluster\.local /m);
    t.match(
      wt.stdout,
      /reviews-v1\.shop\.svc\.cluster\.local\S*\*90,\S*reviews-v2\.shop\.svc\.cluster\.local\S*\*10/,
    );
    t.match(wt.stdout, /policies: .*reviews-no-admin/);
    t.match(
      wt.stdout,
      new RegExp(
        `^CLUSTER\\s+ENDPOINTS\\s+INFLIGHT$[^]*${ipOf("shop/reviews-v1").replace(/\./g, "\\.")}:`,
        "m",
      ),
    );

    const unknown = await ambit(runDir, ["config-dump", "waypoint", "shop/nope", "--mesh-id", meshId]);
    t.equal(unknown.code, 1);
    t.match(unknown.stderr, /no waypoint 'shop\/nope' .*known: shop\/waypoint/);

    // --- the ztunnels ---
    for (const node of ["node-1", "node-2"]) {
      const zj = await ambit(runDir, ["config-dump", "ztunnel", node, "--json", "--mesh-id", meshId]);
      t.equal(zj.code, 0, `config-dump ztunnel ${node} --json`, { stderr: zj.stderr });
      const z = JSON.parse(zj.stdout) as ZtunnelDumpJson;
      t.equal(z.node, node);
      for (const key of ["shop/client", "shop/reviews-v1", "shop/details-shadow"]) {
        const [ns, name] = key.split("/");
        const wl = z.state.workloads.find((x) => x.namespace === ns && x.name === name);
        t.same(wl?.ips, [ipOf(key)], `${node} holds ${key} at its IP`);
      }
      const onNode = status.pods.filter((p) => p.node === node && p.key !== "shop/direct").map((p) => p.key);
      const captured = z.enrolledPods.map((p) => p.key);
      t.ok(
        onNode.filter((k) => !k.startsWith("shop/waypoint")).every((k) => captured.includes(k)),
        `${node} captures its pods`,
        { onNode, captured },
      );
      const cert = z.certificates.find((c) => c.identity === "spiffe://cluster.local/ns/shop/sa/default");
      t.equal(cert?.state, "valid", `${node} holds a valid certificate for shop/default`);
      const left = Date.parse(cert?.notAfter ?? "") - Date.now();
      t.ok(left > 23 * 3600_000 && left <= 24 * 3600_000 + 60_000, `expiry about 24 h ahead (${left} ms)`);

      const zt = await ambit(runDir, ["config-dump", "ztunnel", node, "--mesh-id", meshId]);
      t.equal(zt.code, 0);
      t.match(zt.stdout, new RegExp(`^ztunnel ${node}: ready, xDS connected`));
      t.match(
        zt.stdout,
        new RegExp(
          `^shop/reviews-v1\\s+${ipOf("shop/reviews-v1").replace(/\./g, "\\.")}\\s+node-2\\s+HBONE`,
          "m",
        ),
      );
      t.match(
        zt.stdout,
        /^spiffe:\/\/cluster\.local\/ns\/shop\/sa\/default\s+valid\s+2[34]h\d+m\s/m,
        "expiry in the table",
      );
    }

    const check = await ambit(runDir, ["check", "--mesh-id", meshId]);
    t.equal(check.code, 0, "ambit check passes", { stdout: check.stdout });
    t.match(check.stdout, /^ok {4}waypoint shop\/waypoint connected, \d+ services, no NACKs$/m);
  },
);
