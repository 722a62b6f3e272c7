// `ambit demo` (what `npm start` runs): brings up examples/demo in this
// process, then shows the proof that traffic is carried over mTLS: access-log
// lines of both ztunnels naming the client's and the server's SPIFFE
// identities, and the ztunnels' istio_tcp_* metrics. Stays attached, printing
// access lines, until Ctrl-C, then tears the mesh down.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { AmbitError } from "../../core/errors/errors.js";
import { logger } from "../../core/telemetry/logger.js";
import {
  type AccessRecord,
  adminGet,
  type FileFollower,
  followAccessLogs,
  formatAccess,
} from "../../local/supervisor-logs.js";
import { requireNetnsPrivileges } from "../../ztunnel/node-agent/native.js";
import { collectStatus, renderStatus } from "./status.js";
import { describeUnsettled, startAttached } from "./up.js";

export const DEMO_HELP = `usage: ambit demo [--mesh-id ID] [--dir DIR] [--replace]

Brings up examples/demo (a client on node-1 calling the Service of a server on
node-2 every second), prints access-log lines carrying both SPIFFE identities
and the ztunnels' istio_tcp_* metrics, then keeps printing the access log
until Ctrl-C, which tears the mesh down. 'npm start' runs this. Needs root.

example:
  sudo npm start                # the same as: sudo ambit demo
  sudo ambit demo --mesh-id d2  # beside another mesh
`;

/** examples/demo of this checkout: the first one found walking up from this file. */
export function findDemoDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, "examples", "demo");
    if (fs.existsSync(path.join(dir, "package.json")) && fs.existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) throw new AmbitError("CONFIG", "examples/demo not found next to this build: give --dir");
    dir = up;
  }
}

const PROOF_LINES = 5;
const PROOF_TIMEOUT_MS = 60_000;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "mesh-id": { type: "string" },
      dir: { type: "string" },
      replace: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  requireNetnsPrivileges("the demo (ambit up examples/demo)");
  const dir = values.dir ? path.resolve(values.dir) : findDemoDir();
  const meshId = values["mesh-id"] ?? "demo";
  logger("supervisor").level = "warn";
  process.stderr.write(`ambit demo: bringing up ${dir} as mesh '${meshId}'\n`);
  let follower: FileFollower | undefined;
  let proofDone: () => void = () => undefined;
  const { sup, stopped: teardown } = await startAttached(
    { dir, meshId, nodes: 2, replace: Boolean(values.replace) },
    (line) => process.stderr.write(`  ${line}\n`),
    () => {
      follower?.close();
      proofDone();
    },
  );
  const report = await sup.whenSettled(120_000);
  if (sup.isClosed) return teardown;
  if (!report.settled)
    process.stderr.write(`not everything is ready:\n${describeUnsettled(report).join("\n")}\n`);
  const status = await collectStatus(meshId);
  if (status) process.stdout.write(`\n${renderStatus(status)}\n`);

  // The proof: connections whose access-log line names both identities.
  process.stdout.write(`\n== access log: client -> server over HBONE (mTLS), both SPIFFE identities ==\n`);
  const nodes = sup.runtime.layout.nodes.map((n) => n.name);
  let proven = 0;
  if (sup.isClosed) return teardown;
  const proof = new Promise<void>((resolve) => {
    proofDone = resolve;
  });
  const mutual = (a: AccessRecord) => Boolean(a.src?.identity && a.dst?.identity);
  follower = followAccessLogs(sup.paths, nodes, (node, a) => {
    if (proven < PROOF_LINES) {
      if (!mutual(a)) return;
      proven++;
      process.stdout.write(`${formatAccess(node, a)}\n`);
      if (proven === PROOF_LINES) proofDone();
      return;
    }
    process.stdout.write(`${formatAccess(node, a)}\n`);
  });
  const timer = setTimeout(proofDone, PROOF_TIMEOUT_MS);
  await proof;
  clearTimeout(timer);
  if (sup.isClosed) return teardown;
  if (proven === 0) {
    process.stdout.write(
      `no access-log line with both identities after ${PROOF_TIMEOUT_MS / 1000}s: see 'ambit logs --mesh-id ${meshId} ztunnel-node-1' and 'ambit status --mesh-id ${meshId}'\n`,
    );
  }

  process.stdout.write(`\n== istio_tcp_* metrics of the ztunnels ==\n`);
  for (const node of nodes) {
    try {
      const r = await adminGet(sup.paths.ztunnelSocket(node), "/metrics");
      const lines = r.body.split("\n").filter((l) => l.startsWith("istio_tcp_"));
      process.stdout.write(`-- ztunnel on ${node}:\n${lines.length > 0 ? lines.join("\n") : "(none yet)"}\n`);
    } catch (e) {
      process.stdout.write(`-- ztunnel on ${node}: metrics unavailable (${(e as Error).message})\n`);
    }
  }
  process.stdout.write(`\n== live access log (Ctrl-C tears the mesh down) ==\n`);
  proven = PROOF_LINES;
  return teardown;
}
