// The node agent's enrolled-namespaces file (the plugin fails closed for the
// namespaces it lists while ztunnel is down): CniWiring writes it from the
// model ztunnel holds (MeshState, as xDS fills it) into a real directory,
// and rewrites it as namespaces are enrolled and unenrolled; the plugin's
// reader reads what it wrote.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import { enrolledNamespacesPath, readEnrolledNamespaces } from "../../cni/enrolled-namespaces.js";
import type { ZtunnelConfig } from "../../ztunnel/config.js";
import { enrolledNamespacesOf } from "../../ztunnel/node-agent/zds-enrolled-file.js";
import { CniWiring } from "../../ztunnel/node-agent/zds-wiring.js";
import { MeshState } from "../../ztunnel/state/mesh-state.js";
import { workload } from "./fixtures-ztunnel.js";

t.test("enrolledNamespacesOf: hbone workloads' namespaces, sorted, never ambit-system", async (t) => {
  const ws = [
    workload({ name: "a", namespace: "shop", ip: "10.0.0.1", node: "n1" }),
    workload({ name: "b", namespace: "bank", ip: "10.0.0.2", node: "n2" }),
    workload({ name: "c", namespace: "plain", ip: "10.0.0.3", node: "n1", tunnel: "none" }),
    workload({ name: "d", namespace: "ambit-system", ip: "10.0.0.4", node: "n1" }),
    workload({ name: "e", namespace: "shop", ip: "10.0.0.5", node: "n1" }),
  ];
  t.same(enrolledNamespacesOf(ws), ["bank", "shop"]);
});

t.test("CniWiring writes the file and rewrites it as enrolment changes", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-cni-enrolled-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, "node-agent.sock");
  const file = enrolledNamespacesPath(socketPath);
  const state = new MeshState();
  const wiring = new CniWiring({
    cfg: { cniSocket: socketPath, nodeName: "n1" } as ZtunnelConfig,
    state,
    capturer: { enroll: async () => {}, unenroll: async () => {} },
    onChange: () => {},
  });
  t.equal(wiring.enrolledFile.path, file);
  t.equal(readEnrolledNamespaces(file), undefined, "no file before the agent wrote one");

  await wiring.writeEnrolledNamespaces();
  t.same([...readEnrolledNamespaces(file)!], [], "an empty list once the model is known");

  const shop = workload({ name: "web-0", namespace: "shop", ip: "10.0.0.1", node: "n2" });
  const ctl = workload({ name: "ctl", namespace: "ambit-system", ip: "10.0.0.9", node: "n1" });
  state.applyAddresses([shop, ctl]);
  await wiring.writeEnrolledNamespaces();
  t.same([...readEnrolledNamespaces(file)!], ["shop"]);
  const first = fs.statSync(file);

  // The same set: not rewritten (same inode, the rename is what changes it).
  await wiring.writeEnrolledNamespaces();
  t.equal(fs.statSync(file).ino, first.ino, "unchanged set: no rewrite");

  // Unenrolled: the controller sends the workload with tunnel none.
  state.applyAddresses([{ ...shop, tunnel: "none" }]);
  await wiring.writeEnrolledNamespaces();
  t.same([...readEnrolledNamespaces(file)!], []);

  // Enrolled again, then the workload removed.
  state.applyAddresses([shop]);
  await wiring.writeEnrolledNamespaces();
  t.same([...readEnrolledNamespaces(file)!], ["shop"]);
  state.applyAddresses([], [shop.uid]);
  await wiring.writeEnrolledNamespaces();
  t.same([...readEnrolledNamespaces(file)!], []);

  // Written atomically: no temp file left behind.
  t.same(fs.readdirSync(dir), ["enrolled-namespaces.json"]);

  await wiring.enrolledFile.remove();
  t.equal(readEnrolledNamespaces(file), undefined, "removed on uninstall");
});
