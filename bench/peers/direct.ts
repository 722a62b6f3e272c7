// Peer (a): no proxy; the client pod talks to the server pod through the two
// nodes' plain routing. The baseline every ratio divides by.
import { directTargets, type Peer } from "./types.js";

export const directPeer: Peer = {
  name: "direct",
  label: "direct (no proxy)",
  l7: false,
  unavailable: async () => undefined,
  start: async (ctx) => ({ targets: directTargets(ctx.topo), measured: [], close: async () => undefined }),
};
