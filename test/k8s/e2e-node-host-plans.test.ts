// The node host's pure parts: Service plans, hosts files, the CNI
// configuration list and plugin stdin, the node's file system view, images.
import t from "tap";
import type { EndpointSlice, Service } from "../../controller/provider/objects.js";
import { containerArgv } from "../../local/pod-runner.js";
import { parseConfList, pluginStdin, resultIp } from "./node-host/cni.js";
import { imageName, resolveImage } from "./node-host/images.js";
import { keepVisible, visiblePath } from "./node-host/node-view.js";
import { hostsFile, serviceRules, serviceScript } from "./node-host/service-proxy.js";

const svc = (name: string, ip: string, ports: { name?: string; port: number }[]): Service => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace: "demo" },
  spec: { clusterIP: ip, ports },
});

const slice = (svcName: string, port: number, eps: { ip: string; ready?: boolean }[]): EndpointSlice => ({
  apiVersion: "discovery.k8s.io/v1",
  kind: "EndpointSlice",
  metadata: { name: `${svcName}-x`, namespace: "demo", labels: { "kubernetes.io/service-name": svcName } },
  addressType: "IPv4",
  endpoints: eps.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true } })),
  ports: [{ name: "http", port }],
});

t.test("Services become DNAT rules to ready endpoints, spread evenly", async (t) => {
  const rules = serviceRules(
    [
      svc("server", "10.96.0.10", [{ name: "http", port: 80 }]),
      svc("empty", "10.96.0.11", [{ name: "http", port: 80 }]),
    ],
    [
      slice("server", 8080, [{ ip: "10.244.1.3" }, { ip: "10.244.0.5" }, { ip: "10.244.1.9", ready: false }]),
      slice("empty", 8080, []),
    ],
  );
  t.same(rules, [
    {
      vip: "10.96.0.10",
      port: 80,
      protocol: "tcp",
      endpoints: [
        { ip: "10.244.0.5", port: 8080 },
        { ip: "10.244.1.3", port: 8080 },
      ],
    },
    { vip: "10.96.0.11", port: 80, protocol: "tcp", endpoints: [] },
  ]);
  const script = serviceScript(rules);
  t.match(script, /--probability 0\.50000 -j DNAT --to-destination 10\.244\.0\.5:8080/);
  t.match(script, /--dport 80 -j DNAT --to-destination 10\.244\.1\.3:8080/);
  t.match(script, /-A AMBIT-SERVICES-REJECT -d 10\.96\.0\.11\/32 .* -j REJECT/, "no endpoints: rejected");
  t.notMatch(script, /10\.244\.1\.9/, "an unready endpoint gets no traffic");
});

t.test("hosts file: Service names, the short one only in the pod's namespace", async (t) => {
  const s = [
    svc("server", "10.96.0.10", []),
    { ...svc("api", "10.96.0.12", []), metadata: { name: "api", namespace: "other" } },
  ];
  const text = hostsFile({ hostname: "client-1", ip: "10.244.0.3", namespace: "demo" }, s as Service[]);
  t.match(text, /^10\.96\.0\.10\tserver\.demo\.svc\.cluster\.local server\.demo\.svc server\.demo server$/m);
  t.match(text, /^10\.96\.0\.12\tapi\.other\.svc\.cluster\.local api\.other\.svc api\.other$/m);
  t.match(text, /^10\.244\.0\.3\tclient-1$/m);
});

t.test(
  "CNI configuration list: parsed, each plugin's stdin carries name, version and prevResult",
  async (t) => {
    const list = parseConfList(
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "net",
        plugins: [{ type: "bridge" }, { type: "ambit-cni", socketPath: "/s" }],
      }),
      "10.conflist",
    );
    t.same(
      list.plugins.map((p) => p.type),
      ["bridge", "ambit-cni"],
    );
    const prev = { cniVersion: "1.0.0", ips: [{ address: "10.244.0.3/24" }] };
    t.same(JSON.parse(pluginStdin(list, list.plugins[1]!, prev)), {
      type: "ambit-cni",
      socketPath: "/s",
      cniVersion: "1.0.0",
      name: "net",
      prevResult: prev,
    });
    t.equal(resultIp(prev), "10.244.0.3");
    const single = parseConfList(
      JSON.stringify({ cniVersion: "0.4.0", name: "lo", type: "loopback" }),
      "lo.conf",
    );
    t.same(single.plugins, [{ type: "loopback" }]);
    t.throws(
      () => parseConfList(JSON.stringify({ cniVersion: "1.0.0", name: "x", plugins: [{}] }), "bad.conflist"),
      /plugins\[0\]\.type/,
    );
  },
);

t.test("a node's view: a mount point under an earlier bind is made inside that bind's source", async (t) => {
  const binds = [
    { source: "/n1/var/run/ambit", target: "/var/run/ambit" },
    { source: "/n1/etc/cni/net.d", target: "/etc/cni/net.d" },
  ];
  t.equal(visiblePath("/var/run/ambit/ca", binds), "/n1/var/run/ambit/ca");
  t.equal(visiblePath("/var/run/ambitx", binds), "/var/run/ambitx");
  t.equal(visiblePath("/etc/hosts", binds), "/etc/hosts");
});

t.test("a node's view: the repository stays visible under a volume mounted on its ancestor", async (t) => {
  const tmp = { source: "/pods/p1/volumes/tmp", target: "/tmp" };
  t.same(keepVisible([tmp], "/tmp/clone", "/run/stage"), [
    { source: "/tmp/clone", target: "/run/stage" },
    tmp,
    { source: "/run/stage", target: "/tmp/clone" },
  ]);
  t.same(keepVisible([tmp], "/work/clone", "/run/stage"), [tmp], "not covered: nothing added");
  t.same(keepVisible([{ source: "/x", target: "/tmpx" }], "/tmp/clone", "/run/stage").length, 1);
});

t.test("images: ambit runs the CLI built next to the tests; command replaces the entrypoint", async (t) => {
  t.equal(imageName("ghcr.io/ambit-mesh/ambit:0.1.0"), "ambit");
  t.equal(imageName("registry:5000/x/node@sha256:abc"), "node");
  const ambit = resolveImage("ghcr.io/ambit-mesh/ambit:0.1.0");
  t.match(ambit?.entrypoint[1] ?? "", /cli\/main\.js$/);
  const c = { name: "c", image: "ambit", args: ["ztunnel"] };
  t.same(containerArgv("ns/p", c, "spec.containers[0]", ambit).slice(2), ["ztunnel"]);
  t.same(containerArgv("ns/p", { ...c, command: ["sh", "-c"] }, "x", ambit), ["sh", "-c", "ztunnel"]);
  t.same(containerArgv("ns/p", { name: "b", image: "busybox" }, "x", resolveImage("busybox")), ["sh"]);
  t.equal(resolveImage("quay.io/unknown/thing"), undefined);
});
