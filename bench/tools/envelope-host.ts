// Scenario 6's subscriber processes besides the harness: each hosts a share
// of the envelope-only subscribers (envelope-subscriber.ts), driven over IPC.
// A hundred ztunnels take in their responses on a hundred nodes at once; one
// harness process taking in 100 × 3 MB on one core made the clock measure
// that process (1.1–1.4 s of CPU at 10,000 pods) rather than the server. One
// process per core is the closest this machine gets to proxies in parallel.
//   → {cmd:"start", address, typeUrl, nodes}  ← {type:"ready"} (every subscriber has its first response)
//   → {cmd:"held"}                            ← {type:"held", held: number[]}
//   → {cmd:"reset"}                           ← {type:"reset"}
//   → {cmd:"cpu"}                             ← {type:"cpu", cpuMs} (this process's CPU time so far)
//   → {cmd:"stop"}
import { EnvelopeSubscriber } from "./envelope-subscriber.js";

export type HostCommand =
  | { cmd: "start"; address: string; typeUrl: string; nodes: { id: string; name: string }[] }
  | { cmd: "held" }
  | { cmd: "reset" }
  | { cmd: "cpu" }
  | { cmd: "stop" };

export type HostReply =
  | { type: "ready" }
  | { type: "held"; held: number[] }
  | { type: "reset" }
  | { type: "cpu"; cpuMs: number }
  | { type: "error"; message: string };

const subscribers: EnvelopeSubscriber[] = [];
const reply = (m: HostReply) => process.send?.(m);

process.on("message", (m: HostCommand) => {
  if (m.cmd === "start") {
    for (const n of m.nodes) subscribers.push(new EnvelopeSubscriber(m.address, n.id, n.name, m.typeUrl));
    Promise.all(subscribers.map((s) => s.ready())).then(
      () => reply({ type: "ready" }),
      (err: unknown) => reply({ type: "error", message: String(err) }),
    );
  } else if (m.cmd === "held") {
    reply({ type: "held", held: subscribers.map((s) => s.resources) });
  } else if (m.cmd === "reset") {
    for (const s of subscribers) s.resetCount();
    reply({ type: "reset" });
  } else if (m.cmd === "cpu") {
    const c = process.cpuUsage();
    reply({ type: "cpu", cpuMs: (c.user + c.system) / 1000 });
  } else if (m.cmd === "stop") {
    for (const s of subscribers) s.close();
    process.exit(0);
  }
});
