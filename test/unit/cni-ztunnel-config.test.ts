// ztunnel's CNI settings: flags and environment (the DaemonSet's names), the
// in-cluster API default, and the combinations refused.
import t from "tap";
import { parseZtunnelConfig } from "../../ztunnel/config.js";

const base = ["--node", "n1", "--xds", "127.0.0.1:15010"];

t.test("no socket: CNI mode off, pods file only", async (t) => {
  const c = parseZtunnelConfig([...base, "--pods-file", "/p.json"], { KUBERNETES_SERVICE_HOST: "10.96.0.1" });
  t.not(c, "help");
  if (c === "help") return;
  t.equal(c.cniSocket, undefined);
  t.equal(c.kubeApi, undefined, "no API use without the CNI socket");
  t.equal(c.podsFile, "/p.json");
});

t.test("the DaemonSet's environment", async (t) => {
  const c = parseZtunnelConfig(base, {
    AMBIT_NODE_AGENT_SOCKET: "/var/run/ambit/node-agent.sock",
    AMBIT_CNI_BIN_DIR: "/host/opt/cni/bin",
    AMBIT_CNI_CONF_DIR: "/host/etc/cni/net.d",
    AMBIT_CNI_HOST_BIN_DIR: "/opt/cni/bin",
    KUBERNETES_SERVICE_HOST: "10.96.0.1",
    POD_NAMESPACE: "ambit-system",
  });
  if (c === "help") return t.fail("help");
  t.match(c, {
    cniSocket: "/var/run/ambit/node-agent.sock",
    cniBinDir: "/host/opt/cni/bin",
    cniConfDir: "/host/etc/cni/net.d",
    cniHostBinDir: "/opt/cni/bin",
    cniCopyNode: true,
    kubeApi: "in-cluster",
    podNamespace: "ambit-system",
    daemonSetName: "ambit-ztunnel",
  });
});

t.test("flags win; a kubeconfig or off", async (t) => {
  const c = parseZtunnelConfig([...base, "--cni-socket", "/s.sock", "--kubeconfig", "/kc"], {
    AMBIT_CNI_SOCKET: "/other.sock",
    AMBIT_CNI_COPY_NODE: "0",
    KUBERNETES_SERVICE_HOST: "10.96.0.1",
  });
  if (c === "help") return t.fail("help");
  t.equal(c.cniSocket, "/s.sock");
  t.equal(c.kubeApi, "/kc");
  t.equal(c.cniCopyNode, false);
  const off = parseZtunnelConfig([...base, "--cni-socket", "/s.sock"], {
    AMBIT_KUBE_API: "off",
    KUBERNETES_SERVICE_HOST: "10.96.0.1",
  });
  if (off === "help") return t.fail("help");
  t.equal(off.kubeApi, undefined);
});

t.test("install directories go together, with a socket", async (t) => {
  t.throws(() => parseZtunnelConfig([...base, "--cni-bin-dir", "/b"], {}), { code: "CONFIG" });
  t.throws(
    () => parseZtunnelConfig([...base, "--cni-bin-dir", "/b", "--cni-conf-dir", "/c"], {}),
    /with --cni-socket/,
  );
});
