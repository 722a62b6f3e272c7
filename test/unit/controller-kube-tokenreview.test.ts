// callerFromReview: which TokenReview answers name a CA caller.
import t from "tap";
import { callerFromReview } from "../../controller/provider/kube/tokenreview-authn.js";

const allowed = new Set(["ambit-system/ambit-ztunnel"]);
const review = (username: string, extra: Record<string, string[]> = {}) => ({
  authenticated: true,
  user: { username, extra },
});
const bound = {
  "authentication.kubernetes.io/pod-name": ["zt-1"],
  "authentication.kubernetes.io/pod-uid": ["u1"],
  "authentication.kubernetes.io/node-name": ["n1"],
};

t.test("a bound token of an allowed service account names its pod and node", async (t) => {
  t.same(callerFromReview(review("system:serviceaccount:ambit-system:ambit-ztunnel", bound), allowed), {
    ok: true,
    serviceAccount: "ambit-system/ambit-ztunnel",
    pod: { namespace: "ambit-system", name: "zt-1", uid: "u1" },
    node: "n1",
    selfOnly: false,
  });
});

t.test("another service account's bound token is accepted for itself only (a waypoint)", async (t) => {
  t.match(callerFromReview(review("system:serviceaccount:shop:waypoint", bound), allowed), {
    ok: true,
    serviceAccount: "shop/waypoint",
    selfOnly: true,
  });
});

t.test("refusals say why", async (t) => {
  t.match(callerFromReview({ authenticated: false, error: "expired" }, allowed), {
    ok: false,
    reason: "expired",
  });
  t.match(callerFromReview(review("alice", bound), allowed), { ok: false, reason: /not a service account/ });
  t.match(callerFromReview(review("system:serviceaccount:ambit-system:ambit-ztunnel"), allowed), {
    ok: false,
    reason: /not bound to a pod/,
  });
});
