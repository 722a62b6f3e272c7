// The benchmark harness's pure parts: parsing the load tools' real output
// (recorded in bench/fixtures), /proc parsing, the topology plan, the HAProxy
// pair's configuration and the flags.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { parseArgs, QUICK } from "../../bench/config.js";
import { parseFortio, parseH2load, parseIperf, parseWrk } from "../../bench/load.js";
import { benchYaml, counterSum, meshFiles } from "../../bench/peers/ambit.js";
import { SERVICE_VIP, waypointYaml } from "../../bench/peers/ambit-waypoint.js";
import { HAPROXY_MAXCONN, haproxyConfigs } from "../../bench/peers/haproxy.js";
import { parseRss, parseStat } from "../../bench/sampler.js";
import { planTopology, tuningSteps } from "../../bench/topology.js";

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, read field by field
type KubeDoc = Record<string, any>;

const fx = (name: string) => readFileSync(join(process.cwd(), "bench/fixtures", name), "utf8");

t.test("fortio -json, with log lines before it", async (t) => {
  const r = parseFortio(`{"ts":1,"level":"info","msg":"x"}\nFortio running\n${fx("fortio-http.json")}`, 1024);
  t.equal(r.count, 100);
  t.equal(r.errors, 0);
  t.equal(r.connections, 2);
  t.equal(r.requestedQps, 100);
  t.equal(r.p50.toFixed(3), "0.380", "seconds → ms");
  t.equal(r.p99.toFixed(3), "4.500");
  t.ok(r.p999 > r.p99);
  t.ok(Math.abs(r.durationSec - 1) < 0.1);
});

t.test("wrk, h2load and iperf3 output", async (t) => {
  const w = parseWrk(fx("wrk-close.txt"));
  t.same(w, { rps: 6225.81, requests: 6246, durationSec: 1, errors: 0 });
  const bad = parseWrk(
    "  10 requests in 2.00s, 1KB read\n  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 4\nRequests/sec: 5.00\n",
  );
  t.equal(bad.errors, 10);
  const h = parseH2load(fx("h2load.txt"));
  t.equal(h.rps, 12023.57);
  t.equal(h.requests, 200);
  t.equal(h.errors, 0);
  t.equal(h.durationSec.toFixed(5), "0.01663");
  t.equal(parseIperf(fx("iperf3.json")).toFixed(1), "863.8", "bits/s → MB/s");
  t.throws(() => parseIperf('{"error":"unable to connect"}'), /unable to connect/);
});

t.test("/proc/PID/stat and status", async (t) => {
  // comm with spaces and a parenthesis must not shift the fields.
  const stat = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 50";
  t.same(parseStat(stat), { ppid: 1, utime: 250, stime: 75 });
  t.equal(parseRss("Name:\tx\nVmRSS:\t   2048 kB\nVmSwap:\t0 kB\n"), 2048 * 1024);
  t.equal(parseRss("Name:\tkthread\n"), 0);
});

t.test("topology plan: the project's mesh network, two nodes, a pod on each", async (t) => {
  const topo = planTopology("bfeed01");
  t.equal(topo.prefix, "ambit-bfeed01-");
  t.equal(topo.clientPod.key, "bench/client");
  t.equal(topo.clientPod.node.name, "node-1");
  t.equal(topo.serverPod.node.name, "node-2");
  const names = [
    topo.clientNode.netns,
    topo.serverNode.netns,
    topo.clientPod.netns,
    topo.serverPod.netns,
    topo.controlPlane.netns,
  ];
  t.ok(
    names.every((n) => n.startsWith("ambit-bfeed01-")),
    "every namespace carries the bench prefix",
  );
  t.equal(new Set(names).size, 5);
  t.not(topo.clientNode.linkIp, topo.serverNode.linkIp);
  t.equal(
    topo.clientPod.ip.split(".").slice(0, 3).join("."),
    topo.clientNode.podGatewayIp.split(".").slice(0, 3).join("."),
    "pod in its node's /24",
  );
  t.not(topo.clientPod.ip, topo.serverPod.ip);
  const tuning = tuningSteps(topo).map((s) => s.join(" "));
  t.ok(tuning.includes(`ip netns exec ${topo.clientPod.netns} sysctl -qw net.ipv4.tcp_tw_reuse=1`));
  t.throws(() => planTopology("Bad_Id"), /mesh id/);
});

t.test("HAProxy pair: mTLS both ways, one thread, HTTP mode only for HTTP ports", async (t) => {
  const topo = planTopology("bfeed01");
  const { podGatewayIp: gw1 } = topo.clientNode;
  const { linkIp: n2 } = topo.serverNode;
  const esc = (s: string) => s.replace(/\./g, "\\.");
  const certs = { caPem: "/w/ca.crt", clientPem: "/w/client.pem", serverPem: "/w/server.pem" };
  const tcp = haproxyConfigs("tcp", topo, certs);
  t.match(tcp.client, /nbthread 1/);
  t.match(tcp.client, new RegExp(`maxconn ${HAPROXY_MAXCONN}`));
  t.match(tcp.client, new RegExp(`bind ${esc(gw1)}:18080\\n`));
  t.match(
    tcp.client,
    new RegExp(`server peer ${esc(n2)}:28080 ssl crt /w/client\\.pem ca-file /w/ca\\.crt verify required`),
  );
  t.match(
    tcp.server,
    new RegExp(`bind ${esc(n2)}:28080 ssl crt /w/server\\.pem ca-file /w/ca\\.crt verify required`),
  );
  t.match(tcp.server, new RegExp(`server app ${esc(topo.serverPod.ip)}:8080\\n`));
  t.notMatch(tcp.client, /mode http/);
  const http = haproxyConfigs("http", topo, certs);
  t.match(http.client, /frontend out_http\n {2}mode http/);
  t.match(http.client, /frontend out_iperf\n {2}mode tcp/);
  t.match(http.client, new RegExp(`bind ${esc(gw1)}:18079 proto h2`), "gRPC frontend speaks h2c");
  t.match(http.client, /retry-on conn-failure/);
  t.match(http.client, /28080 ssl crt .* alpn h2/, "HTTP/2 between the nodes");
});

t.test("ambit peers: the controller's YAML, the mesh files, metric counters", async (t) => {
  const docs = parseAllDocuments(`${benchYaml()}---\n${waypointYaml("10.213.2.3")}`).map(
    (d) => d.toJS() as KubeDoc,
  );
  const byKind = (k: string) => docs.filter((d: KubeDoc) => d.kind === k);
  t.equal(
    byKind("Namespace")[0]?.metadata.labels["ambit.dev/dataplane-mode"],
    "ambient",
    "the bench namespace is enrolled",
  );
  t.same(
    byKind("Pod").map((p: KubeDoc) => `${p.metadata.name}@${p.spec.nodeName}`),
    ["client@node-1", "server@node-2", "waypoint-0@node-2"],
  );
  const wp = byKind("Pod")[2];
  t.equal(
    wp?.metadata.labels["ambit.dev/dataplane-mode"],
    "none",
    "the waypoint's own traffic is not captured",
  );
  const gw = byKind("Gateway")[0];
  t.equal(gw?.spec.gatewayClassName, "ambit-waypoint");
  t.same(gw?.spec.addresses, [{ type: "IPAddress", value: "10.213.2.3" }]);
  const svc = byKind("Service")[0];
  t.equal(svc?.spec.clusterIP, SERVICE_VIP);
  t.equal(svc?.metadata.labels["ambit.dev/use-waypoint"], "waypoint");
  t.ok(parseYaml(benchYaml().split("---\n")[0] ?? ""), "documents parse on their own");

  const topo = planTopology("bfeed01");
  const files = meshFiles(topo, { tok1: "node-1", tok2: "node-2" });
  t.same(Object.keys(files.facts.pods), ["bench/client", "bench/server"]);
  t.same(files.facts.pods["bench/server"], { ip: topo.serverPod.ip, node: "node-2", ready: true });
  t.same(files.podsFiles["node-1"], [
    { key: "bench/client", netnsPath: topo.clientPod.netnsPath, ip: topo.clientPod.ip },
  ]);
  t.equal(files.facts.nodes["node-2"]?.address, topo.serverNode.linkIp);

  const metrics = [
    "# HELP istio_tcp_connections_opened_total x",
    'istio_tcp_connections_opened_total{reporter="source",a="b c"} 3',
    'istio_tcp_connections_opened_total{reporter="destination"} 4',
    "istio_tcp_connections_opened_total_other 100",
    "istio_tcp_connections_closed_total 9",
  ].join("\n");
  t.equal(counterSum(metrics, "istio_tcp_connections_opened_total"), 7);
  t.equal(counterSum(metrics, "istio_tcp_connections_opened_total", /reporter="source"/), 3);
  t.equal(counterSum(metrics, "missing_total"), 0);
});

t.test("flags", async (t) => {
  const q = parseArgs(["--quick", "--peers", "direct,haproxy-tcp", "--scenarios", "latency"], "/repo");
  if (q === "help") throw new Error("unexpected help");
  t.equal(q.mode, "quick");
  t.same(q.settings, QUICK);
  t.same(q.peers, ["direct", "haproxy-tcp"]);
  t.same([...q.scenarios], ["latency"]);
  t.equal(q.writeReport, false, "a quick run leaves BENCHMARKS.md alone");
  t.notMatch(q.resultsPath, /^\/repo/, "nor the committed results");
  const full = parseArgs([], "/repo");
  if (full === "help") throw new Error("unexpected help");
  t.equal(full.resultsPath, "/repo/bench/results/latest.json");
  t.equal(full.settings.latency.qps, 1000);
  t.equal(full.settings.latency.durationSec, 60);
  t.throws(() => parseArgs(["--peers", "envoy"], "/repo"), /--peers: unknown peer 'envoy'/);
  t.throws(() => parseArgs(["--nope"], "/repo"), /unknown flag '--nope'/);
  t.equal(parseArgs(["--help"], "/repo"), "help");
});
