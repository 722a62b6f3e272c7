import type { ControlPlaneResult, Settings } from "./results.js";
export async function runControlPlane(_s: Settings["controlPlane"], _log: (m: string) => void): Promise<ControlPlaneResult> {
  return { status: "not-measured", note: "todo", runs: [] };
}
