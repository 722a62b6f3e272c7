// The controller's one config module: flags first, then AMBIT_* environment
// variables, then defaults. Nothing else in controller/ reads either.
import { parseArgs } from "node:util";
import { AmbitError } from "../core/errors/errors.js";

/** Kube mode: the cluster is the source of truth (informers, CA root Secret, TokenReview, Lease). */
export interface KubeModeConfig {
  /** The controller's namespace (POD_NAMESPACE): Lease, CA Secret, root ConfigMap. */
  namespace: string;
  /** This replica's identity in the Lease (POD_NAME). */
  podName?: string;
  /** Secret holding the CA root (AMBIT_CA_ROOT_SECRET). */
  caRootSecret: string;
  /** `ns/name` service accounts whose tokens may ask for certificates. */
  allowedServiceAccounts: string[];
  /** A kubeconfig file; without it: in-cluster, else $KUBECONFIG / ~/.kube/config. */
  kubeconfig?: string;
  /** OTLP/HTTP endpoint the deployed waypoints export spans to (their AMBIT_OTLP_ENDPOINT). */
  waypointOtlpEndpoint?: string;
}

export interface ControllerConfig {
  /** Where objects come from: a YAML directory (local) or a Kubernetes API server (kube). */
  provider: "local" | "kube";
  /** Set when provider is kube. */
  kube?: KubeModeConfig;
  /** Directory of Kubernetes YAML (local provider; empty in kube mode). */
  configDir: string;
  /** JSON facts from the local runner (pod IPs, nodes, readiness), re-read when it changes. */
  factsFile?: string;
  /** Where the CA keeps its root (created on first start) or finds a user-provided one. */
  caDir: string;
  /** token → node, the bootstrap credentials of ztunnels (written by `ambit up`). */
  tokensFile?: string;
  trustDomain: string;
  clusterId: string;
  clusterDomain: string;
  rootNamespace: string;
  /** Address the gRPC ports bind to. */
  listenHost: string;
  /** xDS + CA, plaintext (local use and tests). 0 picks a free port. */
  xdsPort: number;
  /** xDS + CA over TLS. 0 picks a free port; -1 disables. */
  securePort: number;
  /** Admin HTTP (metrics, debug, readiness): host and port; -1 disables. */
  adminHost: string;
  adminPort: number;
  /** Admin HTTP also on this Unix socket (the CLI's way in from any namespace). */
  adminSocket?: string;
  /**
   * Prometheus metrics only (no debug endpoints) on metricsHost:metricsPort,
   * for scrapers off the controller's host (a cluster: the pod IP). Unset: off.
   */
  metricsHost?: string;
  metricsPort: number;
  certTtlSeconds: number;
  /**
   * Local provider: where the last good version of each file's objects is
   * kept, so that an object invalid on disk when the controller (re)starts
   * is still served at its last good version instead of vanishing.
   */
  lastGoodFile?: string;
  /** DNS names and IPs the 15012 serving certificate carries. */
  servingNames: string[];
  servingIps: string[];
}

export const CONTROLLER_HELP = `usage: ambit controller --config-dir DIR [options]
       ambit controller --provider=kube [options]

Runs the control plane: watches DIR (ordinary Kubernetes YAML), serves delta
xDS and the CA (IstioCertificateService) on the xDS port (plaintext) and the
secure port (TLS), metrics and debug endpoints on the admin port.

options (environment variable in brackets):
  --provider local|kube  object source (local)                 [AMBIT_PROVIDER]
  --config-dir DIR       Kubernetes YAML to serve (local)      [AMBIT_CONFIG_DIR]
  --kubeconfig FILE      kube: else in-cluster, $KUBECONFIG    [KUBECONFIG]
  --waypoint-otlp-endpoint URL  kube: OTLP/HTTP collector for the waypoints it
                         deploys (their AMBIT_OTLP_ENDPOINT)   [AMBIT_WAYPOINT_OTLP_ENDPOINT]
                         kube also reads POD_NAMESPACE, POD_NAME,
                         AMBIT_CA_ROOT_SECRET (ambit-ca-root),
                         AMBIT_CA_ALLOWED_SERVICE_ACCOUNTS (ns/sa,...)
  --facts-file FILE      live facts from the local runner      [AMBIT_FACTS_FILE]
  --ca-dir DIR           CA root (created on first start)      [AMBIT_CA_DIR]   (DIR/.ambit/ca; kube: /var/run/ambit/ca)
  --tokens-file FILE     ztunnel bootstrap tokens (token→node) [AMBIT_TOKENS_FILE]
  --trust-domain TD      SPIFFE trust domain                   [AMBIT_TRUST_DOMAIN] (cluster.local)
  --listen HOST          gRPC bind address                     [AMBIT_LISTEN] (0.0.0.0)
  --xds-port N           plaintext xDS + CA                    [AMBIT_XDS_PORT] (15010)
  --secure-port N        TLS xDS + CA, -1 to disable           [AMBIT_SECURE_PORT] (15012)
  --admin-port N         admin HTTP, =-1 disables             [AMBIT_ADMIN_PORT] (15014)
  --admin-host HOST      admin bind address                    [AMBIT_ADMIN_HOST] (127.0.0.1)
  --admin-socket PATH    admin HTTP on a Unix socket too       [AMBIT_ADMIN_SOCKET]
  --metrics-host HOST    serve /metrics only (no debug) on HOST [AMBIT_METRICS_HOST] (off)
  --metrics-port N       port for --metrics-host               [AMBIT_METRICS_PORT] (15020)
  --last-good-file F     last good objects, kept across restarts [AMBIT_LAST_GOOD_FILE] (CA_DIR/../last-good-config.json)
  --cert-ttl SECONDS     workload certificate lifetime         [AMBIT_CERT_TTL] (86400)
  --serving-ip IP        extra IP SAN for the 15012 cert (repeatable)

example:
  ambit controller --config-dir examples/demo --xds-port 15010
`;

function int(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < -1 || n > 65535)
    throw new AmbitError("CONFIG", `--${name}: '${v}' is not a port or number`);
  return n;
}

export function parseControllerConfig(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): ControllerConfig | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      provider: { type: "string" },
      kubeconfig: { type: "string" },
      "waypoint-otlp-endpoint": { type: "string" },
      "config-dir": { type: "string" },
      "facts-file": { type: "string" },
      "ca-dir": { type: "string" },
      "tokens-file": { type: "string" },
      "trust-domain": { type: "string" },
      listen: { type: "string" },
      "xds-port": { type: "string" },
      "secure-port": { type: "string" },
      "admin-port": { type: "string" },
      "admin-host": { type: "string" },
      "admin-socket": { type: "string" },
      "metrics-host": { type: "string" },
      "metrics-port": { type: "string" },
      "cert-ttl": { type: "string" },
      "last-good-file": { type: "string" },
      "serving-ip": { type: "string", multiple: true },
    },
    strict: true,
  });
  if (values.help) return "help";
  const provider = values.provider ?? env.AMBIT_PROVIDER ?? "local";
  if (provider !== "local" && provider !== "kube") {
    throw new AmbitError("CONFIG", `--provider: '${provider}' is not local or kube`);
  }
  let kube: KubeModeConfig | undefined;
  if (provider === "kube") {
    const namespace = env.POD_NAMESPACE;
    if (!namespace)
      throw new AmbitError(
        "CONFIG",
        "POD_NAMESPACE is required with --provider=kube (the controller's namespace)",
      );
    kube = {
      namespace,
      podName: env.POD_NAME || undefined,
      caRootSecret: env.AMBIT_CA_ROOT_SECRET || "ambit-ca-root",
      allowedServiceAccounts: (env.AMBIT_CA_ALLOWED_SERVICE_ACCOUNTS ?? `${namespace}/ambit-ztunnel`)
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== ""),
      kubeconfig: values.kubeconfig ?? (env.KUBECONFIG || undefined),
    };
    const otlp = values["waypoint-otlp-endpoint"] ?? (env.AMBIT_WAYPOINT_OTLP_ENDPOINT || undefined);
    if (otlp && !/^https?:\/\/[^/]+/.test(otlp))
      throw new AmbitError("CONFIG", `--waypoint-otlp-endpoint: '${otlp}' is not an http(s) URL`);
    if (otlp) kube.waypointOtlpEndpoint = otlp;
  }
  const configDir = values["config-dir"] ?? env.AMBIT_CONFIG_DIR ?? "";
  if (provider === "local" && !configDir) {
    throw new AmbitError("CONFIG", "--config-dir is required (a directory of Kubernetes YAML)");
  }
  const defaultCaDir = kube ? "/var/run/ambit/ca" : `${configDir}/.ambit/ca`;
  const ttl = int("cert-ttl", values["cert-ttl"] ?? env.AMBIT_CERT_TTL, 86400);
  const caDir = values["ca-dir"] ?? env.AMBIT_CA_DIR ?? defaultCaDir;
  return {
    provider,
    kube,
    configDir,
    factsFile: values["facts-file"] ?? env.AMBIT_FACTS_FILE,
    caDir,
    ...(kube
      ? {}
      : {
          lastGoodFile:
            values["last-good-file"] ?? env.AMBIT_LAST_GOOD_FILE ?? `${caDir}/../last-good-config.json`,
        }),
    tokensFile: values["tokens-file"] ?? env.AMBIT_TOKENS_FILE,
    trustDomain: values["trust-domain"] ?? env.AMBIT_TRUST_DOMAIN ?? "cluster.local",
    clusterId: env.AMBIT_CLUSTER_ID ?? "Kubernetes",
    clusterDomain: env.AMBIT_CLUSTER_DOMAIN ?? "cluster.local",
    rootNamespace: env.AMBIT_ROOT_NAMESPACE ?? "ambit-system",
    listenHost: values.listen ?? env.AMBIT_LISTEN ?? "0.0.0.0",
    xdsPort: int("xds-port", values["xds-port"] ?? env.AMBIT_XDS_PORT, 15010),
    securePort: int("secure-port", values["secure-port"] ?? env.AMBIT_SECURE_PORT, 15012),
    adminHost: values["admin-host"] ?? env.AMBIT_ADMIN_HOST ?? "127.0.0.1",
    adminPort: int("admin-port", values["admin-port"] ?? env.AMBIT_ADMIN_PORT, 15014),
    adminSocket: values["admin-socket"] ?? env.AMBIT_ADMIN_SOCKET,
    ...((values["metrics-host"] ?? env.AMBIT_METRICS_HOST)
      ? { metricsHost: values["metrics-host"] ?? env.AMBIT_METRICS_HOST }
      : {}),
    metricsPort: int("metrics-port", values["metrics-port"] ?? env.AMBIT_METRICS_PORT, 15020),
    certTtlSeconds: ttl,
    servingNames: [
      "ambit-controller",
      `ambit-controller.${kube?.namespace ?? "ambit-system"}.svc`,
      "localhost",
    ],
    servingIps: ["127.0.0.1", ...(values["serving-ip"] ?? [])],
  };
}
