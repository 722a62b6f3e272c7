// Gateway API requires every RouteParentStatus.controllerName to equal the
// spec.controllerName of the parent's GatewayClass: a route status written
// under another name is ignored by kubectl/gwctl and garbage-collected by
// other controllers. The translator's route statuses and the GatewayClass
// ambit creates must therefore name the same controller.
import { join } from "node:path";
import t from "tap";
import { waypointGatewayClass } from "../../controller/provider/kube/gateway-class.js";
import { translate } from "../../controller/translate/index.js";
import { translateWaypoints } from "../../controller/translate/waypoint.js";
import { loadCase } from "./translate-harness.js";

t.test("route parent statuses name the GatewayClass's controller", async (t) => {
  const classController = waypointGatewayClass().spec.controllerName;
  for (const name of ["canary", "bad-input", "grpc-http-conflict"]) {
    const { snapshot } = await loadCase(join(process.cwd(), "test/fixtures/waypoint-translate", name));
    const out = translateWaypoints(snapshot, translate(snapshot));
    const parents = out.statuses
      .filter((s) => s.kind !== "Gateway")
      .flatMap((s) => (s.status.parents ?? []) as { controllerName: string }[]);
    t.ok(parents.length > 0, `${name}: has route parent statuses`);
    for (const p of parents) t.equal(p.controllerName, classController, `${name}: controllerName`);
  }
});
