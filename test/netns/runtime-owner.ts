// A stand-in for `ambit up`'s long-running process, for runtime.test.ts:
// starts a local mesh with a server pod on each node, prints one JSON line
// when every pod is ready, then keeps running until it is signalled.
// Usage: node runtime-owner.js <meshId>   (AMBIT_RUN_DIR set by the caller)
import { LocalRuntime } from "../../local/runtime.js";

const meshId = process.argv[2] ?? "";
const node = process.execPath;
const env = [{ name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }];
const server = `require("net").createServer((s) => s.on("error", () => {}).end("hi " + s.remoteAddress)).listen(8080, process.env.POD_IP)`;

const rt = await LocalRuntime.start({
  meshId,
  nodes: ["node1", "node2"],
  runner: { backoff: { initialMs: 20, maxMs: 200 }, probeIntervalUntilReadyMs: 50, maxGraceMs: 1000 },
});
for (const [i, nodeName] of ["node1", "node2"].entries()) {
  await rt.runPod({
    key: `demo/web-${i}`,
    node: nodeName,
    spec: {
      containers: [
        {
          name: "web",
          command: ["env", "-u", "NODE_OPTIONS", node, "-e", server],
          env,
          readinessProbe: { tcpSocket: { port: 8080 } },
        },
      ],
    },
  });
}
await Promise.all(rt.pods().map((p) => rt.whenReady(p.key)));
process.stdout.write(
  `${JSON.stringify({ pods: rt.pods().map((p) => ({ key: p.key, ip: p.ip, pid: p.runner.status()[0]?.pid })) })}\n`,
);
// Stays up (the pods' child processes keep the loop alive) until signalled.
process.on("SIGTERM", () => process.exit(0));
