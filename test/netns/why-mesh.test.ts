// `ambit why` against the data plane: a local mesh (`ambit up`) with a DENY
// policy for one client; for an allowed pair, a denied pair and a plain-text
// pair, `why` and a real connection from inside the pod are run side by side
// and must agree. Also `ambit check` (healthy mesh: exit 0) and
// `ambit config-dump ztunnel` on the same mesh.
import fs from "node:fs";
import path from "node:path";
import t from "tap";
import { ambit, CLIENT, testMeshDirs, writeMeshFixture } from "./mesh-fixture.js";
import { needsRoot } from "./netns-fixture.js";


const EXTRA = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: rogue, namespace: mesh}
---
apiVersion: v1
kind: Pod
metadata: {name: rogue, namespace: mesh, labels: {app: rogue}}
spec:
  nodeName: node-1
  serviceAccountName: rogue
  containers: [{name: idle, image: ignored, command: [sleep, infinity]}]
---
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-rogue, namespace: mesh}
spec:
  selector: {matchLabels: {app: server}}
  action: DENY
  rules:
    - from: [{source: {principals: [cluster.local/ns/mesh/sa/rogue]}}]
`;

t.test(
  "why agrees with the data plane: allowed, denied by policy, plain text",
  { skip: needsRoot, timeout: 240_000 },
  async (t) => {
    const { runDir, dir, meshId } = testMeshDirs(t, "why");
    writeMeshFixture(dir);
    fs.writeFileSync(path.join(dir, "rogue.yaml"), EXTRA);
    const up = await ambit(runDir, ["up", dir, "--nodes", "2", "--mesh-id", meshId, "--timeout", "90"]);
    t.equal(up.code, 0, "ambit up", { stderr: up.stderr });

    const check = await ambit(runDir, ["check", "--mesh-id", meshId]);
    t.equal(check.code, 0, "ambit check: a healthy mesh has no problems", { stdout: check.stdout });
    t.match(check.stdout, /ztunnel node-2 connected and in sync/);

    const dump = await ambit(runDir, ["config-dump", "ztunnel", "node-2", "--json", "--mesh-id", meshId]);
    t.equal(dump.code, 0);
    const d = JSON.parse(dump.stdout) as {
      state: { policies: { name: string }[] };
      enrolledPods: { key: string }[];
    };
    t.ok(
      d.state.policies.some((p) => p.name === "deny-rogue"),
      "node-2's ztunnel holds the DENY policy",
    );
    const table = await ambit(runDir, ["config-dump", "ztunnel", "node-2", "--mesh-id", meshId]);
    t.match(table.stdout, /CERTIFICATE\s+STATE/);

    const status = JSON.parse((await ambit(runDir, ["status", "--json", "--mesh-id", meshId])).stdout) as {
      pods: { key: string; ip: string }[];
    };
    const serverIp = status.pods.find((p) => p.key === "mesh/server")?.ip as string;

    const pairs: { from: string; dst: string; host: string; port: number; expect: "allowed" | "denied" }[] = [
      { from: "mesh/client", dst: "server:80", host: "server.mesh", port: 80, expect: "allowed" },
      { from: "mesh/rogue", dst: "server:80", host: "server.mesh", port: 80, expect: "denied" },
      { from: "plain/client", dst: `${serverIp}:8080`, host: serverIp, port: 8080, expect: "allowed" },
    ];
    for (const p of pairs) {
      const why = await ambit(runDir, ["why", p.from, p.dst, "--json", "--mesh-id", meshId]);
      const answer = JSON.parse(why.stdout) as { verdict: string; summary: string };
      const r = await ambit(runDir, [
        "exec",
        "--mesh-id",
        meshId,
        p.from,
        "--",
        "node",
        "-e",
        CLIENT,
        p.host,
        String(p.port),
        `why-${p.from}`,
      ]);
      const real = (JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { out?: string }).out?.includes(
        "echo:",
      )
        ? "allowed"
        : "denied";
      t.equal(real, p.expect, `the data plane: ${p.from} → ${p.dst} ${p.expect}`, { stdout: r.stdout });
      t.equal(answer.verdict, real, `why agrees: ${answer.summary}`);
      t.equal(why.code, real === "allowed" ? 0 : 1, "exit status follows the verdict");
    }
    const text = await ambit(runDir, ["why", "mesh/rogue", "server:80", "--mesh-id", meshId]);
    t.match(text.stdout, /DENY policy mesh\/deny-rogue, rule 0/, "the text names the policy and rule");
  },
);
