// The ztunnel's one config module: flags, then AMBIT_* environment, then
// defaults. Nothing else in ztunnel/ reads either.
import { parseArgs } from "node:util";
import { AmbitError } from "../core/errors/errors.js";

export interface ZtunnelConfig {
  /** The Kubernetes node this ztunnel serves; only its pods get certificates and capture. */
  nodeName: string;
  /** The controller's xDS address, host:port (15010 plaintext, 15012 TLS). */
  xdsAddress: string;
  /** The CA's address (default: the xDS address). */
  caAddress: string;
  /** PEM of the mesh root, to reach the controller over TLS; absent: plaintext. */
  controllerRootFile?: string;
  /** Bootstrap token presented to the CA (file re-read on each request). */
  tokenFile?: string;
  trustDomain: string;
  clusterDomain: string;
  /** JSON list of this node's pods and their network namespaces, from the node host (`ambit up`, the CNI plugin). */
  podsFile?: string;
  /** The node agent's Unix socket for the CNI plugin (ambit-cni); pods arrive through it. */
  cniSocket?: string;
  /** Install ambit-cni into these directories (as mounted here) and keep it chained. */
  cniBinDir?: string;
  cniConfDir?: string;
  /** The plugin directory as the host sees it (the wrapper's paths); default /opt/cni/bin. */
  cniHostBinDir: string;
  /** Copy node beside the plugin (hosts without node); default true. */
  cniCopyNode: boolean;
  /** The API for the ADD-time enrolment decision and the uninstall check: a kubeconfig, "in-cluster", or undefined (off). */
  kubeApi?: string;
  /** This ztunnel's namespace and DaemonSet (is it being deleted on exit: uninstall). */
  podNamespace?: string;
  daemonSetName: string;
  /** Look for unreported pods only in /var/run/netns entries with this name prefix, not in /proc (tests on a shared host). */
  cniScanPrefix?: string;
  /** Admin (15000), metrics (15020), readiness (15021) bind address. */
  adminHost: string;
  adminPort: number;
  /** Metrics (15020) bind address (default: adminHost); `ambit up` binds the node's IP so the controller's dashboard can scrape it. */
  metricsHost?: string;
  metricsPort: number;
  readinessPort: number;
  /** Admin HTTP also on this Unix socket (the CLI's way in from any namespace). */
  adminSocket?: string;
  /** On SIGTERM: stop accepting, wait this long for open connections, then exit. */
  drainSeconds: number;
  /** Node resolvers for names outside the mesh. */
  dnsUpstreams: string[];
  /** Requested certificate lifetime (0: the CA's default). */
  certTtlSeconds: number;
  /** New connections refused above this memory use (MB); 0: off; absent: 90% of the cgroup's memory limit (v1 or v2), off without one. */
  memoryLimitMb?: number;
}

export const ZTUNNEL_HELP = `usage: ambit ztunnel --node NAME --xds HOST:PORT [options]

Runs the node proxy: captures the traffic of the enrolled pods of NODE, carries
it over HBONE (HTTP/2 CONNECT over mTLS), enforces L4 authorization.

options (environment variable in brackets):
  --node NAME           this node's name                         [AMBIT_NODE_NAME]
  --xds HOST:PORT       controller xDS (15010 plain, 15012 TLS)  [AMBIT_XDS_ADDRESS]
  --ca HOST:PORT        CA address (default: the xDS address)    [AMBIT_CA_ADDRESS]
  --controller-root F   mesh root PEM: talk TLS to the controller [AMBIT_CONTROLLER_ROOT]
  --token-file F        bootstrap token for the CA               [AMBIT_TOKEN_FILE]
  --pods-file F         this node's pods (JSON: key, netnsPath, ip) [AMBIT_PODS_FILE]
  --cni-socket PATH     pods from the ambit-cni plugin on this socket [AMBIT_CNI_SOCKET]
  --cni-bin-dir D       install ambit-cni here (with --cni-conf-dir) [AMBIT_CNI_BIN_DIR]
  --cni-conf-dir D      chain it into the node's CNI config here  [AMBIT_CNI_CONF_DIR]
  --kubeconfig F        API for enrolment at CNI ADD ("in-cluster") [AMBIT_KUBE_API]
  --trust-domain TD     SPIFFE trust domain (cluster.local)      [AMBIT_TRUST_DOMAIN]
  --admin-host HOST     admin/metrics/readiness bind (127.0.0.1) [AMBIT_ADMIN_HOST]
  --admin-port N        config dump, certs, log level (15000)    [AMBIT_ADMIN_PORT]
  --metrics-port N      Prometheus metrics (15020)               [AMBIT_METRICS_PORT]
  --metrics-host HOST   metrics bind (default: --admin-host)     [AMBIT_METRICS_HOST]
  --readiness-port N    readiness (15021)                        [AMBIT_READINESS_PORT]
  --admin-socket PATH   admin HTTP on a Unix socket too          [AMBIT_ADMIN_SOCKET]
  --drain-seconds N     drain time on SIGTERM (600)              [AMBIT_DRAIN_SECONDS]
  --dns-upstream IP     resolver for other names (repeatable; default: /etc/resolv.conf)
  --memory-limit-mb N   refuse new connections above N MB in use (RSS, or the cgroup's
                        working set); 0: off; default 90% of the cgroup's limit (v1 or v2),
                        off without one                          [AMBIT_MEMORY_LIMIT_MB]

example:
  ambit ztunnel --node node-1 --xds 10.213.0.2:15010 --token-file /run/ambit/m1/node-1.token \\
    --pods-file /run/ambit/m1/nodes/node-1/pods.json
`;

function num(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < -1) throw new AmbitError("CONFIG", `--${name}: '${v}' is not a number`);
  return n;
}

export function parseZtunnelConfig(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): ZtunnelConfig | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      node: { type: "string" },
      xds: { type: "string" },
      ca: { type: "string" },
      "controller-root": { type: "string" },
      "token-file": { type: "string" },
      "pods-file": { type: "string" },
      "cni-socket": { type: "string" },
      "cni-bin-dir": { type: "string" },
      "cni-conf-dir": { type: "string" },
      kubeconfig: { type: "string" },
      "trust-domain": { type: "string" },
      "admin-host": { type: "string" },
      "admin-port": { type: "string" },
      "metrics-port": { type: "string" },
      "metrics-host": { type: "string" },
      "readiness-port": { type: "string" },
      "admin-socket": { type: "string" },
      "drain-seconds": { type: "string" },
      "dns-upstream": { type: "string", multiple: true },
      "cert-ttl": { type: "string" },
      "memory-limit-mb": { type: "string" },
    },
    strict: true,
  });
  if (values.help) return "help";
  const nodeName = values.node ?? env.AMBIT_NODE_NAME;
  if (!nodeName) throw new AmbitError("CONFIG", "--node is required (this node's name)");
  const xdsAddress = values.xds ?? env.AMBIT_XDS_ADDRESS;
  if (!xdsAddress) throw new AmbitError("CONFIG", "--xds is required (the controller's host:port)");
  return {
    nodeName,
    xdsAddress,
    caAddress: values.ca ?? env.AMBIT_CA_ADDRESS ?? xdsAddress,
    controllerRootFile: values["controller-root"] ?? env.AMBIT_CONTROLLER_ROOT,
    tokenFile: values["token-file"] ?? env.AMBIT_TOKEN_FILE,
    podsFile: values["pods-file"] ?? env.AMBIT_PODS_FILE,
    ...cniConfig(values, env),
    trustDomain: values["trust-domain"] ?? env.AMBIT_TRUST_DOMAIN ?? "cluster.local",
    clusterDomain: env.AMBIT_CLUSTER_DOMAIN ?? "cluster.local",
    adminHost: values["admin-host"] ?? env.AMBIT_ADMIN_HOST ?? "127.0.0.1",
    metricsHost:
      values["metrics-host"] ??
      env.AMBIT_METRICS_HOST ??
      values["admin-host"] ??
      env.AMBIT_ADMIN_HOST ??
      "127.0.0.1",
    adminPort: num("admin-port", values["admin-port"] ?? env.AMBIT_ADMIN_PORT, 15000),
    metricsPort: num("metrics-port", values["metrics-port"] ?? env.AMBIT_METRICS_PORT, 15020),
    readinessPort: num("readiness-port", values["readiness-port"] ?? env.AMBIT_READINESS_PORT, 15021),
    adminSocket: values["admin-socket"] ?? env.AMBIT_ADMIN_SOCKET,
    drainSeconds: num("drain-seconds", values["drain-seconds"] ?? env.AMBIT_DRAIN_SECONDS, 600),
    dnsUpstreams: values["dns-upstream"] ?? [],
    certTtlSeconds: num("cert-ttl", values["cert-ttl"] ?? env.AMBIT_CERT_TTL, 0),
    ...memoryLimit(values["memory-limit-mb"] ?? env.AMBIT_MEMORY_LIMIT_MB),
  };
}

function memoryLimit(v: string | undefined): Pick<ZtunnelConfig, "memoryLimitMb"> {
  if (v === undefined || v === "") return {};
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new AmbitError("CONFIG", `--memory-limit-mb: '${v}' is not a number of megabytes (0: off)`);
  return { memoryLimitMb: n };
}

/** The CNI side: socket, installation, API access (in-cluster by default when there is a socket in a pod). */
function cniConfig(
  values: { "cni-socket"?: string; "cni-bin-dir"?: string; "cni-conf-dir"?: string; kubeconfig?: string },
  env: NodeJS.ProcessEnv,
): Pick<
  ZtunnelConfig,
  | "cniSocket"
  | "cniBinDir"
  | "cniConfDir"
  | "cniHostBinDir"
  | "cniCopyNode"
  | "kubeApi"
  | "podNamespace"
  | "daemonSetName"
  | "cniScanPrefix"
> {
  const cniSocket = values["cni-socket"] ?? env.AMBIT_CNI_SOCKET ?? env.AMBIT_NODE_AGENT_SOCKET;
  const cniBinDir = values["cni-bin-dir"] ?? env.AMBIT_CNI_BIN_DIR;
  const cniConfDir = values["cni-conf-dir"] ?? env.AMBIT_CNI_CONF_DIR;
  if ((cniBinDir || cniConfDir) && !(cniBinDir && cniConfDir && cniSocket))
    throw new AmbitError("CONFIG", "--cni-bin-dir and --cni-conf-dir go together, with --cni-socket");
  const kubeApi =
    values.kubeconfig ??
    env.AMBIT_KUBE_API ??
    (cniSocket && env.KUBERNETES_SERVICE_HOST ? "in-cluster" : undefined);
  return {
    cniSocket,
    cniBinDir,
    cniConfDir,
    cniHostBinDir: env.AMBIT_CNI_HOST_BIN_DIR ?? "/opt/cni/bin",
    cniCopyNode: (env.AMBIT_CNI_COPY_NODE ?? "1") !== "0",
    kubeApi: kubeApi === "off" ? undefined : kubeApi,
    podNamespace: env.POD_NAMESPACE,
    daemonSetName: env.AMBIT_DAEMONSET_NAME ?? "ambit-ztunnel",
    cniScanPrefix: env.AMBIT_CNI_SCAN_PREFIX || undefined,
  };
}
