// The end-to-end tier: a real API server, scheduler and controller manager,
// two test nodes from the node host (real CNI bridge + host-local, then
// ambit-cni once the ztunnel DaemonSet chained it; pods as processes in their
// own network namespaces), ambit installed with `kubectl apply -k manifests/`.
// The steps build on each other, in order.
import { join } from "node:path";
import t from "tap";
import {
  captureFabric,
  type E2e,
  e2eUnavailableReason,
  eventually,
  httpFromPod,
  podOf,
  root,
  startE2e,
  ztunnelMetrics,
} from "./e2e-fixtures.js";
import { APPS, DENY, INVALID, WAYPOINT_SPLIT } from "./e2e-workloads.js";

const skip = e2eUnavailableReason();
const MARKER = "PLAINMARKER7f3a";
const ROLLOUT = { timeoutMs: 200_000 };

/** node2's ztunnel saw a mutual-TLS connection to the server (reporter=destination). */
function mtlsToServer(metrics: string): boolean {
  return metrics
    .split("\n")
    .some(
      (l) =>
        l.startsWith("istio_tcp_connections_opened_total{") &&
        l.includes('reporter="destination"') &&
        l.includes('destination_workload="server"') &&
        l.includes('connection_security_policy="mutual_tls"'),
    );
}

async function ztunnelPodOn(e: E2e, node: string): Promise<string> {
  const r = await e.kubectl([
    "-n",
    "ambit-system",
    "get",
    "pods",
    "-l",
    "app=ambit-ztunnel",
    `--field-selector=spec.nodeName=${node}`,
    "-o",
    "jsonpath={.items[0].metadata.name}",
  ]);
  return r.stdout.trim();
}

async function leaseHolder(e: E2e): Promise<string> {
  const r = await e.kubectl([
    "-n",
    "ambit-system",
    "get",
    "lease",
    "ambit-controller",
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  return r.stdout.trim();
}

t.test("e2e: ambit on a real control plane with two test nodes", { skip, timeout: 900_000 }, async (t) => {
  const e = await startE2e(t, 2);
  let client = "";
  const get = (url: string) => httpFromPod(e, "demo", client, url);

  await t.test("plain pods on the test nodes reach a Service across nodes", async (t) => {
    await e.kubectl(["apply", "-f", "-"], { input: APPS("demo", MARKER) });
    await e.kubectl(
      ["-n", "demo", "rollout", "status", "deploy/server", "deploy/client", "--timeout=180s"],
      ROLLOUT,
    );
    const nodes = await e.kubectl([
      "get",
      "nodes",
      "-o",
      "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
    ]);
    t.same(nodes.stdout.split(" "), ["True", "True"], "both test nodes are Ready");
    client = await podOf(e, "demo", "app=client");
    const cap = captureFabric(e);
    await cap.ready;
    const answer = await get("http://server.demo.svc/x");
    const text = await cap.stop();
    t.match(
      answer,
      new RegExp(`^200 ${MARKER} server-`),
      "the client reaches the server by its Service name",
    );
    t.ok(text.includes(MARKER), "without the mesh, the payload crosses the inter-node link in plain text");
  });

  await t.test(
    "kubectl apply -k manifests/: the controller Deployment and a ztunnel on every node",
    async (t) => {
      await e.kubectl(["apply", "-k", join(root, "manifests")], { timeoutMs: 120_000 });
      await e.kubectl(
        ["-n", "ambit-system", "rollout", "status", "deploy/ambit-controller", "--timeout=180s"],
        ROLLOUT,
      );
      await e.kubectl(
        ["-n", "ambit-system", "rollout", "status", "ds/ambit-ztunnel", "--timeout=180s"],
        ROLLOUT,
      );
      const zt = await e.kubectl([
        "-n",
        "ambit-system",
        "get",
        "pods",
        "-l",
        "app=ambit-ztunnel",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
      ]);
      t.same(zt.stdout.split(" ").sort(), ["node1", "node2"], "one ztunnel per node");
    },
  );

  await t.test("a labelled namespace: client → server across nodes over mTLS", async (t) => {
    await e.kubectl(["label", "namespace", "demo", "ambit.dev/dataplane-mode=ambient"]);
    // Pods that ran before the label are enrolled too; the ztunnels learn it asynchronously.
    await eventually(
      "an mTLS connection reported by node2's ztunnel",
      async () =>
        (await get("http://server.demo.svc/warm")).startsWith("200 ") &&
        mtlsToServer(await ztunnelMetrics(e, "node2")),
      120_000,
    );
    const cap = captureFabric(e);
    await cap.ready;
    const answer = await get("http://server.demo.svc/secured");
    const text = await cap.stop();
    t.match(answer, new RegExp(`^200 ${MARKER} server-`), "the client still reaches the server");
    t.notOk(text.includes(MARKER), "no plaintext payload on the inter-node link");
    t.match(text, /\.15008: /, "the connection crossed the link as HBONE (port 15008)");
    const zt2 = await ztunnelPodOn(e, "node2");
    const log = await eventually("node2's access log line", async () => {
      const l = e.host.logs("ambit-system", zt2, "ztunnel");
      return (
        /"direction":"inbound".*"identity":"spiffe:\/\/cluster\.local\/ns\/demo\/sa\/default"/.test(l) && l
      );
    });
    t.ok(log, "node2's ztunnel logged the inbound connection with the client's SPIFFE identity");
  });

  await t.test("an invalid ambit.dev object is refused by the API server's schema", async (t) => {
    const r = await e.kubectl(["apply", "-f", "-"], { input: INVALID("demo"), allowFailure: true });
    t.not(r.code, 0, "kubectl apply fails");
    t.match(r.stderr, /spec\.action: Unsupported value: "SOMETIMES"/, "the error names the field");
  });

  await t.test(
    "an AuthorizationPolicy DENY blocks, and deleting it lets traffic through again",
    async (t) => {
      await e.kubectl(["apply", "-f", "-"], { input: DENY("demo") });
      await eventually(
        "the DENY in force",
        async () => (await get("http://server.demo.svc/deny")).startsWith("ERR"),
        60_000,
      );
      t.pass("the client's connection is refused");
      await e.kubectl(["-n", "demo", "delete", "authorizationpolicy", "deny-server"]);
      await eventually(
        "the DENY lifted",
        async () => (await get("http://server.demo.svc/allow")).startsWith("200 "),
        60_000,
      );
      t.pass("allowed again once the policy is gone");
    },
  );

  await t.test(
    "a Gateway of class ambit-waypoint: Deployment, status, and a 90/10 HTTPRoute split",
    async (t) => {
      await e.kubectl(["apply", "-f", "-"], { input: WAYPOINT_SPLIT("demo") });
      await e.kubectl(
        ["-n", "demo", "wait", "--for=condition=Programmed", "gateway/waypoint", "--timeout=120s"],
        ROLLOUT,
      );
      t.pass("the Gateway is Programmed");
      await e.kubectl(
        [
          "-n",
          "demo",
          "rollout",
          "status",
          "deploy/waypoint",
          "deploy/echo-v1",
          "deploy/echo-v2",
          "--timeout=180s",
        ],
        ROLLOUT,
      );
      const owner = await e.kubectl([
        "-n",
        "demo",
        "get",
        "deploy/waypoint",
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
      ]);
      t.equal(owner.stdout, "Gateway/waypoint", "the waypoint Deployment is owned by its Gateway");
      await eventually(
        "the route through the waypoint",
        async () => /^200 v[12] /.test(await get("http://echo.demo.svc/")),
        120_000,
      );
      const counts = { v1: 0, v2: 0, other: 0 };
      for (let i = 0; i < 40; i++) {
        const a = await get(`http://echo.demo.svc/${i}`);
        if (a.startsWith("200 v1 ")) counts.v1++;
        else if (a.startsWith("200 v2 ")) counts.v2++;
        else counts.other++;
      }
      t.equal(counts.other, 0, "every request answered");
      // Without the route, the Service spreads ~20/20 over its two pods.
      t.ok(counts.v1 >= 28 && counts.v2 >= 1, `90/10 split (v1 ${counts.v1}, v2 ${counts.v2} of 40)`);
    },
  );

  await t.test(
    "deleting the leading controller pod: traffic keeps flowing, another replica leads",
    async (t) => {
      const leader = await leaseHolder(e);
      t.ok(leader, `leader ${leader}`);
      await e.kubectl(["-n", "ambit-system", "delete", "pod", leader, "--wait=false"]);
      const failures: string[] = [];
      const newLeader = await eventually(
        "a new leader",
        async () => {
          const a = await get("http://server.demo.svc/during");
          if (!a.startsWith("200 ")) failures.push(a);
          const h = await leaseHolder(e);
          return h && h !== leader ? h : undefined;
        },
        120_000,
      );
      t.not(newLeader, leader, `${newLeader} took over`);
      t.same(failures, [], "no request failed meanwhile");
      await e.kubectl(
        ["-n", "ambit-system", "rollout", "status", "deploy/ambit-controller", "--timeout=180s"],
        ROLLOUT,
      );
      // The new leader writes status: a change made now is translated and served.
      await e.kubectl(["apply", "-f", "-"], { input: DENY("demo") });
      await eventually(
        "a DENY applied after the takeover",
        async () => (await get("http://server.demo.svc/d2")).startsWith("ERR"),
        60_000,
      );
      await e.kubectl(["-n", "demo", "delete", "authorizationpolicy", "deny-server"]);
      await eventually(
        "the DENY lifted",
        async () => (await get("http://server.demo.svc/a2")).startsWith("200 "),
        60_000,
      );
      t.pass("the new controller serves policy changes");
    },
  );

  await t.test("removing the namespace label returns it to plain traffic", async (t) => {
    await e.kubectl(["label", "namespace", "demo", "ambit.dev/dataplane-mode-"]);
    await eventually(
      "plaintext on the link again",
      async () => {
        const cap = captureFabric(e);
        await cap.ready;
        const a = await get("http://server.demo.svc/plain");
        const text = await cap.stop();
        return a.startsWith("200 ") && text.includes(MARKER);
      },
      90_000,
    );
    t.pass("the payload crosses the link in plain text, the request still answered");
  });
});
