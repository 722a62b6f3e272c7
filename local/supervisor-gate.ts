// The init container `ambit up` puts first in every pod: it holds the pod's
// own containers back until the pod's traffic is captured when it should be,
// so an application never opens a connection that escapes the mesh in the
// window between its start and ztunnel's capture (the job Istio's CNI plugin
// does). It runs inside the pod's network namespace:
//
//   node dist/local/supervisor-gate.js CONTROLLER_SOCKET NS/POD [TIMEOUT_SECONDS]
//
// 1. asks the controller (admin socket) until the pod is in its model;
// 2. if the pod is enrolled (tunnel hbone), waits until ambit's capture
//    chains exist in this namespace (ztunnel installs them after its
//    listeners are open).
// It always exits 0: at the timeout it says so and lets the pod start.
import { spawnSync } from "node:child_process";
import type { MeshWorkload } from "../core/model/types.js";
import { adminJson } from "./supervisor-logs.js";

const POLL_MS = 100;

function captured(): boolean {
  const r = spawnSync("iptables", ["-w", "5", "-t", "nat", "-S", "AMBIT_OUTPUT"], { stdio: "ignore" });
  return r.status === 0;
}

async function enrolment(socket: string, key: string): Promise<"hbone" | "none" | undefined> {
  try {
    const model = await adminJson<{ workloads: MeshWorkload[] }>(socket, "/debug/model", "the controller");
    const w = model.workloads.find((x) => `${x.namespace}/${x.name}` === key);
    return w?.tunnel;
  } catch {
    return undefined; // the controller is restarting: ask again
  }
}

async function main(): Promise<void> {
  const [socket, key, timeout] = process.argv.slice(2);
  if (!socket || !key) {
    console.error("usage: supervisor-gate.js CONTROLLER_SOCKET NS/POD [TIMEOUT_SECONDS]");
    return;
  }
  const deadline = Date.now() + Number(timeout ?? "30") * 1000;
  const tick = () => new Promise((r) => setTimeout(r, POLL_MS)); // no event reaches a process inside the pod
  let tunnel: "hbone" | "none" | undefined;
  for (;;) {
    tunnel = await enrolment(socket, key);
    if (tunnel || Date.now() >= deadline) break;
    await tick();
  }
  if (!tunnel) {
    console.log(`${key}: not in the controller's model after ${timeout ?? 30}s; starting anyway`);
    return;
  }
  if (tunnel === "none") {
    console.log(`${key}: not enrolled; starting`);
    return;
  }
  while (Date.now() < deadline && !captured()) await tick();
  console.log(
    captured()
      ? `${key}: traffic captured by ztunnel; starting`
      : `${key}: capture not in place after ${timeout ?? 30}s; starting anyway`,
  );
}

void main();
