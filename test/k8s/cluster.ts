// A real Kubernetes control plane on loopback for the test/k8s tier: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler as processes,
// with generated certificates, a service-account signing key pair, a static
// token file and RBAC. No kubelet: nodes are stood in for by the tests.
//
// Binaries come from test/k8s/build-kube.sh (~/.cache/ambit/k8s-<version>/bin)
// and Debian's etcd. Everything a cluster starts (processes, the temp dir) is
// removed by stop(), also when startup fails half-way, and the processes are
// killed if the test process exits without calling stop().
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

export const KUBE_VERSION = process.env.AMBIT_K8S_VERSION ?? "v1.37.2";

/** Where build-kube.sh puts the binaries. */
export function kubeBinDir(): string {
  const cache = process.env.AMBIT_CACHE ?? join(homedir(), ".cache", "ambit");
  return process.env.AMBIT_K8S_BIN ?? join(cache, `k8s-${KUBE_VERSION}`, "bin");
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/usr/sbin"])) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Why the cluster cannot start here, or undefined when it can (tests skip with this reason). */
export function clusterUnavailableReason(): string | undefined {
  const bin = kubeBinDir();
  for (const c of ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]) {
    if (!existsSync(join(bin, c))) return `${join(bin, c)} missing: run test/k8s/build-kube.sh`;
  }
  if (!which("etcd")) return "etcd missing: run test/k8s/build-kube.sh (installs Debian's etcd-server)";
  if (!which("openssl")) return "openssl missing";
  return undefined;
}

export interface ClusterOptions {
  /** Start kube-controller-manager (default true). */
  controllerManager?: boolean;
  /** Start kube-scheduler (default true). */
  scheduler?: boolean;
  /** Service ClusterIP range (default 10.96.0.0/16). */
  serviceCIDR?: string;
  /** Pod CIDR the controller manager splits into per-node podCIDRs (default 10.244.0.0/16). */
  clusterCIDR?: string;
  /** The address the API server publishes in the `kubernetes` Service (default: chosen by the API server). */
  advertiseAddress?: string;
  /**
   * The API server's (only) listening address (default 127.0.0.1). A test
   * node host binds an address its node namespaces reach; clients (kubectl,
   * the controller manager) then use it too. It is added to the serving
   * certificate, and is the default advertise address.
   */
  bindAddress?: string;
  /** Keep the temp dir (logs, certificates) after stop(), for debugging. Also AMBIT_K8S_KEEP=1. */
  keep?: boolean;
  /** Readiness deadline for the whole control plane (default 120 s). */
  timeoutMs?: number;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  /** Exit code (non-zero only with allowFailure). */
  code: number;
}

export interface KubectlOptions {
  input?: string;
  timeoutMs?: number;
  /** Resolve with the exit code instead of rejecting (e.g. `auth can-i`, which exits 1 for "no"). */
  allowFailure?: boolean;
}

export interface Cluster {
  /** Temp dir holding certificates, kubeconfigs, logs and etcd's data. */
  dir: string;
  kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** The admin bearer token (group system:masters). */
  token: string;
  /** PEM of the cluster CA (signs the API server's serving certificate). */
  caPem: string;
  /** The service-account issuer the API server puts in tokens. */
  serviceAccountIssuer: string;
  /** Runs kubectl against this cluster; rejects with stderr on a non-zero exit. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  stop(): Promise<void>;
}

export class ClusterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClusterError";
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await execFileP("openssl", args, { cwd });
}

/** CA, the API server's serving certificate, and the service-account key pair. */
async function makeCertificates(dir: string, serviceIP: string, extraIPs: string[] = []): Promise<void> {
  await openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=ambit-test-ca",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  await openssl(
    [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      "/CN=kube-apiserver",
      "-keyout",
      "apiserver.key",
      "-out",
      "apiserver.csr",
    ],
    dir,
  );
  const san = [
    "IP:127.0.0.1",
    `IP:${serviceIP}`,
    ...extraIPs.filter((ip) => ip !== "127.0.0.1").map((ip) => `IP:${ip}`),
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
  ].join(",");
  await writeFile(
    join(dir, "apiserver.ext"),
    `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`,
  );
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      "apiserver.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      "apiserver.ext",
      "-out",
      "apiserver.crt",
    ],
    dir,
  );
  // RSA: the signing key of service-account tokens (RS256, what every client expects).
  await openssl(["genrsa", "-out", "sa.key", "2048"], dir);
  await openssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
}

function kubeconfigYaml(server: string, caPem: string, user: string, token: string): string {
  const ca = Buffer.from(caPem).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: ambit-test
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: ${user}
  user:
    token: ${token}
contexts:
- name: ambit-test
  context:
    cluster: ambit-test
    user: ${user}
current-context: ambit-test
`;
}

interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

/** GET https://127.0.0.1:port/path; resolves with the status code, or 0 when it cannot connect. */
function probe(
  port: number,
  path: string,
  ca: string | undefined,
  token?: string,
  host = "127.0.0.1",
): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        host,
        port,
        path,
        method: "GET",
        timeout: 2000,
        ...(ca ? { ca } : { rejectUnauthorized: false }),
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
    req.end();
  });
}

/**
 * Starts a control plane and resolves once the API server is ready (/readyz)
 * and the controller manager and scheduler report healthy.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const unavailable = clusterUnavailableReason();
  if (unavailable) throw new ClusterError(unavailable);
  const bin = kubeBinDir();
  const keep = opts.keep ?? process.env.AMBIT_K8S_KEEP === "1";
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const serviceCIDR = opts.serviceCIDR ?? "10.96.0.0/16";
  const serviceIP = `${serviceCIDR.split("/")[0].split(".").slice(0, 3).join(".")}.1`;
  const dir = await mkdtemp(join(tmpdir(), "ambit-k8s-"));
  const procs: Proc[] = [];
  let stopped = false;

  const killAll = (signal: NodeJS.Signals) => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  };
  // The test process may die without stop(): leave no control plane behind.
  const onExit = () => killAll("SIGKILL");
  process.on("exit", onExit);

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Reverse start order: clients of the API server first, etcd last.
    for (const p of [...procs].reverse()) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
      p.child.kill("SIGTERM");
      const t = setTimeout(() => p.child.kill("SIGKILL"), 5000);
      await p.exited;
      clearTimeout(t);
    }
    process.off("exit", onExit);
    if (!keep) await rm(dir, { recursive: true, force: true });
  };

  const launch = (name: string, cmd: string, args: string[]): Proc => {
    const log = join(dir, `${name}.log`);
    const out = createWriteStream(log);
    const child = spawn(cmd, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    const exited = new Promise<number | null>((resolve) => {
      child.once("exit", (code) => resolve(code));
      child.once("error", () => resolve(-1));
    });
    const p = { name, child, log, exited };
    procs.push(p);
    return p;
  };

  const logTail = async (p: Proc) => {
    try {
      return (await readFile(p.log, "utf8")).split("\n").slice(-25).join("\n");
    } catch {
      return "(no log)";
    }
  };

  /** Polls `ready` until it is true; fails fast when a process exits. */
  const waitReady = async (what: string, ready: () => Promise<boolean>, watch: Proc[]) => {
    let delay = 100;
    for (;;) {
      for (const p of watch) {
        if (p.child.exitCode !== null || p.child.signalCode !== null) {
          throw new ClusterError(
            `${p.name} exited (${p.child.exitCode ?? p.child.signalCode}) while waiting for ${what}:\n${await logTail(p)}`,
          );
        }
      }
      if (await ready()) return;
      if (Date.now() > deadline) {
        const tails = await Promise.all(watch.map(async (p) => `--- ${p.name}\n${await logTail(p)}`));
        throw new ClusterError(`timed out waiting for ${what}\n${tails.join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
    }
  };

  try {
    const bindAddress = opts.bindAddress ?? "127.0.0.1";
    await makeCertificates(dir, serviceIP, [bindAddress]);
    const caPem = await readFile(join(dir, "ca.crt"), "utf8");
    const token = randomBytes(24).toString("hex");
    const kcmToken = randomBytes(24).toString("hex");
    const schedToken = randomBytes(24).toString("hex");
    // token,user,uid,"group1,group2"
    await writeFile(
      join(dir, "tokens.csv"),
      `${[
        `${token},ambit-admin,ambit-admin,"system:masters"`,
        `${kcmToken},system:kube-controller-manager,system:kube-controller-manager`,
        `${schedToken},system:kube-scheduler,system:kube-scheduler`,
      ].join("\n")}\n`,
    );

    const [etcdPort, etcdPeer, apiPort, kcmPort, schedPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const server = `https://${bindAddress}:${apiPort}`;
    const kubeconfigPath = join(dir, "admin.kubeconfig");
    await writeFile(kubeconfigPath, kubeconfigYaml(server, caPem, "ambit-admin", token));
    await writeFile(join(dir, "kcm.kubeconfig"), kubeconfigYaml(server, caPem, "kcm", kcmToken));
    await writeFile(
      join(dir, "scheduler.kubeconfig"),
      kubeconfigYaml(server, caPem, "scheduler", schedToken),
    );

    const etcd = launch("etcd", "etcd", [
      "--name=default",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      "--log-level=warn",
      "--logger=zap",
    ]);

    const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local";
    const api = launch("kube-apiserver", join(bin, "kube-apiserver"), [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      `--bind-address=${bindAddress}`,
      `--secure-port=${apiPort}`,
      ...(opts.advertiseAddress ? [`--advertise-address=${opts.advertiseAddress}`] : []),
      `--tls-cert-file=${join(dir, "apiserver.crt")}`,
      `--tls-private-key-file=${join(dir, "apiserver.key")}`,
      `--client-ca-file=${join(dir, "ca.crt")}`,
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      "--authorization-mode=RBAC",
      `--service-account-issuer=${serviceAccountIssuer}`,
      `--service-account-key-file=${join(dir, "sa.pub")}`,
      `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      `--api-audiences=${serviceAccountIssuer}`,
      `--service-cluster-ip-range=${serviceCIDR}`,
      "--allow-privileged=true",
      "--profiling=false",
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      "--v=1",
    ]);

    await waitReady(
      "kube-apiserver /readyz",
      async () => (await probe(apiPort, "/readyz", caPem, token, bindAddress)) === 200,
      [etcd, api],
    );

    const waitFor: Proc[] = [etcd, api];
    const checks: Promise<void>[] = [];
    if (opts.controllerManager !== false) {
      const kcm = launch("kube-controller-manager", join(bin, "kube-controller-manager"), [
        `--kubeconfig=${join(dir, "kcm.kubeconfig")}`,
        `--authentication-kubeconfig=${join(dir, "kcm.kubeconfig")}`,
        `--authorization-kubeconfig=${join(dir, "kcm.kubeconfig")}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, "kcm-certs")}`,
        "--leader-elect=false",
        `--service-account-private-key-file=${join(dir, "sa.key")}`,
        `--root-ca-file=${join(dir, "ca.crt")}`,
        "--use-service-account-credentials=true",
        `--cluster-signing-cert-file=${join(dir, "ca.crt")}`,
        `--cluster-signing-key-file=${join(dir, "ca.key")}`,
        `--service-cluster-ip-range=${serviceCIDR}`,
        "--allocate-node-cidrs=true",
        `--cluster-cidr=${opts.clusterCIDR ?? "10.244.0.0/16"}`,
        "--node-cidr-mask-size=24",
        "--v=1",
      ]);
      waitFor.push(kcm);
      checks.push(
        waitReady(
          "kube-controller-manager /healthz",
          async () => (await probe(kcmPort, "/healthz", undefined)) === 200,
          [kcm],
        ),
      );
    }
    if (opts.scheduler !== false) {
      const sched = launch("kube-scheduler", join(bin, "kube-scheduler"), [
        `--kubeconfig=${join(dir, "scheduler.kubeconfig")}`,
        `--authentication-kubeconfig=${join(dir, "scheduler.kubeconfig")}`,
        `--authorization-kubeconfig=${join(dir, "scheduler.kubeconfig")}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${schedPort}`,
        `--cert-dir=${join(dir, "scheduler-certs")}`,
        "--leader-elect=false",
        "--v=1",
      ]);
      waitFor.push(sched);
      checks.push(
        waitReady(
          "kube-scheduler /readyz",
          async () => (await probe(schedPort, "/readyz", undefined)) === 200,
          [sched],
        ),
      );
    }
    await Promise.all(checks);

    // A Namespace and its Pods applied in one go race the service-account
    // controller: admission refuses the Pods until the namespace's "default"
    // ServiceAccount exists (a second or so). kubectl users retry; so does this.
    const kubectl = async (args: string[], o: KubectlOptions = {}): Promise<KubectlResult> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await kubectlOnce(args, o);
        } catch (e) {
          const raced = e instanceof ClusterError && /serviceaccount "default" not found/.test(e.message);
          if (!raced || attempt >= 30) throw e;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    };
    const kubectlOnce = async (args: string[], o: KubectlOptions): Promise<KubectlResult> =>
      new Promise((resolve, reject) => {
        const child = execFile(
          join(bin, "kubectl"),
          [`--kubeconfig=${kubeconfigPath}`, ...args],
          { timeout: o.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
            if (err && !o.allowFailure)
              reject(new ClusterError(`kubectl ${args.join(" ")}: ${stderr.trim() || err.message}`));
            else resolve({ stdout, stderr, code });
          },
        );
        if (o.input !== undefined) child.stdin?.end(o.input);
        else child.stdin?.end();
      });

    return { dir, kubeconfigPath, server, token, caPem, serviceAccountIssuer, kubectl, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
