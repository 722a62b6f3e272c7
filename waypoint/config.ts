// The waypoint's one config module: flags, then AMBIT_* environment, then
// defaults. Nothing else in waypoint/ reads either.
import { parseArgs } from "node:util";
import { AmbitError } from "../core/errors/errors.js";

export interface WaypointConfig {
  /** The Gateway this process serves. */
  namespace: string;
  name: string;
  xdsAddress: string;
  caAddress: string;
  controllerRootFile?: string;
  tokenFile?: string;
  trustDomain: string;
  serviceAccount: string;
  /** This pod's IP: HBONE listens here on 15008 and upstream tunnels start here. */
  podIp: string;
  hbonePort: number;
  /** A plain-text HTTP listener (debugging, tests): requests are routed by Host. 0: off. */
  plainPort: number;
  adminHost: string;
  adminPort: number;
  metricsPort: number;
  readinessPort: number;
  accessLogSample: number;
  drainSeconds: number;
  certTtlSeconds: number;
  /** OTLP/HTTP collector for request spans (base URL or …/v1/traces); absent: no spans. */
  otlpEndpoint?: string;
}

export const WAYPOINT_HELP = `usage: ambit waypoint --gateway NS/NAME --xds HOST:PORT --pod-ip IP [options]

Runs an L7 waypoint for the Gateway NS/NAME (class ambit-waypoint): terminates
HBONE on 15008, routes HTTP/1.1, HTTP/2 and gRPC by the Gateway API routes of
the Services that use it, enforces L7 policy, and forwards over HBONE.

options (environment variable in brackets):
  --gateway NS/NAME     the waypoint Gateway                      [AMBIT_WAYPOINT]
  --xds HOST:PORT       controller xDS (15010 plain, 15012 TLS)  [AMBIT_XDS_ADDRESS]
  --ca HOST:PORT        CA address (default: the xDS address)    [AMBIT_CA_ADDRESS]
  --controller-root F   mesh root PEM: talk TLS to the controller [AMBIT_CONTROLLER_ROOT]
  --token-file F        bearer token for the CA                  [AMBIT_TOKEN_FILE]
  --pod-ip IP           this pod's IP (HBONE listen, tunnel source) [AMBIT_POD_IP]
  --service-account SA  identity's service account (the Gateway name) [AMBIT_SERVICE_ACCOUNT]
  --trust-domain TD     SPIFFE trust domain (cluster.local)      [AMBIT_TRUST_DOMAIN]
  --plain-port N        plain-text HTTP listener, routed by Host (0: off) [AMBIT_PLAIN_PORT]
  --admin-host HOST     admin/metrics/readiness bind (0.0.0.0)   [AMBIT_ADMIN_HOST]
  --admin-port N        config dump (15000)                      [AMBIT_ADMIN_PORT]
  --metrics-port N      Prometheus metrics (15020)               [AMBIT_METRICS_PORT]
  --readiness-port N    readiness (15021)                        [AMBIT_READINESS_PORT]
  --access-log-sample F fraction of requests logged, 0..1 (0.01) [AMBIT_ACCESS_LOG_SAMPLE]
  --drain-seconds N     drain time on SIGTERM (30)               [AMBIT_DRAIN_SECONDS]
  --otlp-endpoint URL   export one span per request over OTLP/HTTP, e.g.
                        http://127.0.0.1:4318 (off when unset)
                        [AMBIT_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT]

example:
  ambit waypoint --gateway shop/waypoint --xds 10.213.0.2:15010 --pod-ip 10.244.1.9 \\
    --token-file /run/ambit/m1/shop-waypoint.token
`;

function num(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new AmbitError("CONFIG", `--${name}: '${v}' is not a number`);
  return n;
}

export function parseWaypointConfig(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): WaypointConfig | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      gateway: { type: "string" },
      xds: { type: "string" },
      ca: { type: "string" },
      "controller-root": { type: "string" },
      "token-file": { type: "string" },
      "pod-ip": { type: "string" },
      "service-account": { type: "string" },
      "trust-domain": { type: "string" },
      "plain-port": { type: "string" },
      "admin-host": { type: "string" },
      "admin-port": { type: "string" },
      "metrics-port": { type: "string" },
      "readiness-port": { type: "string" },
      "access-log-sample": { type: "string" },
      "drain-seconds": { type: "string" },
      "cert-ttl": { type: "string" },
      "otlp-endpoint": { type: "string" },
    },
    strict: true,
  });
  if (values.help) return "help";
  const gw = values.gateway ?? env.AMBIT_WAYPOINT;
  const m = gw ? /^([^/]+)\/([^/]+)$/.exec(gw) : null;
  if (!m) throw new AmbitError("CONFIG", "--gateway NS/NAME is required (the waypoint Gateway)");
  const xdsAddress = values.xds ?? env.AMBIT_XDS_ADDRESS;
  if (!xdsAddress) throw new AmbitError("CONFIG", "--xds is required (the controller's host:port)");
  const podIp = values["pod-ip"] ?? env.AMBIT_POD_IP;
  if (!podIp) throw new AmbitError("CONFIG", "--pod-ip is required (this pod's IP)");
  const sample = Number(values["access-log-sample"] ?? env.AMBIT_ACCESS_LOG_SAMPLE ?? "0.01");
  if (!(sample >= 0 && sample <= 1)) throw new AmbitError("CONFIG", "--access-log-sample must be in 0..1");
  const otlp =
    values["otlp-endpoint"] ??
    env.AMBIT_OTLP_ENDPOINT ??
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (otlp && !/^https?:\/\/[^/]+/.test(otlp))
    throw new AmbitError("CONFIG", `--otlp-endpoint: '${otlp}' is not an http(s) URL`);
  return {
    ...(otlp ? { otlpEndpoint: otlp } : {}),
    namespace: m[1]!,
    name: m[2]!,
    xdsAddress,
    caAddress: values.ca ?? env.AMBIT_CA_ADDRESS ?? xdsAddress,
    controllerRootFile: values["controller-root"] ?? env.AMBIT_CONTROLLER_ROOT,
    tokenFile: values["token-file"] ?? env.AMBIT_TOKEN_FILE,
    trustDomain: values["trust-domain"] ?? env.AMBIT_TRUST_DOMAIN ?? "cluster.local",
    serviceAccount: values["service-account"] ?? env.AMBIT_SERVICE_ACCOUNT ?? m[2]!,
    podIp,
    hbonePort: 15008,
    plainPort: num("plain-port", values["plain-port"] ?? env.AMBIT_PLAIN_PORT, 0),
    adminHost: values["admin-host"] ?? env.AMBIT_ADMIN_HOST ?? "0.0.0.0",
    adminPort: num("admin-port", values["admin-port"] ?? env.AMBIT_ADMIN_PORT, 15000),
    metricsPort: num("metrics-port", values["metrics-port"] ?? env.AMBIT_METRICS_PORT, 15020),
    readinessPort: num("readiness-port", values["readiness-port"] ?? env.AMBIT_READINESS_PORT, 15021),
    accessLogSample: sample,
    drainSeconds: num("drain-seconds", values["drain-seconds"] ?? env.AMBIT_DRAIN_SECONDS, 30),
    certTtlSeconds: num("cert-ttl", values["cert-ttl"] ?? env.AMBIT_CERT_TTL, 0),
  };
}
