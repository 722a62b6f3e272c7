// A valid object edited into an invalid one while the controller runs: the
// provider keeps its last good version (so the snapshot does not change),
// and the error, naming the object and the field, still reaches the
// controller's view (/debug/errors, `ambit status`), also after a restart
// with the invalid file on disk (the last good version is kept in a file);
// fixing the file clears it.
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { ControllerApp } from "../../controller/app.js";
import { parseControllerConfig } from "../../controller/config.js";

const policy = (action: string) => `apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-probe, namespace: shop}
spec:
  action: ${action}
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/probe]}}]}]
`;

t.test("an object turned invalid is reported at once; its last good version stays published", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ambit-ctl-invalid-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const yamlDir = join(dir, "yaml");
  await import("node:fs/promises").then((fs) => fs.mkdir(yamlDir));
  await writeFile(join(yamlDir, "policy.yaml"), policy("DENY"));
  const cfg = parseControllerConfig([
    ...["--config-dir", yamlDir, "--ca-dir", join(dir, "ca"), "--listen", "127.0.0.1"],
    ...["--xds-port", "0", "--secure-port=-1", "--admin-port=-1"],
  ]);
  if (cfg === "help") throw new Error("unexpected help");
  const app = new ControllerApp(cfg);
  await app.start();
  t.teardown(() => app.close());
  const until = async (pred: () => boolean) => {
    while (!pred()) await once(app, "errors");
  };
  t.same(app.current().errors, [], "no errors at first");
  t.equal(app.current().policies.length, 1);

  await writeFile(join(yamlDir, "policy.yaml"), policy("DENYY"));
  await until(() => app.current().errors.length > 0);
  const [e] = app.current().errors;
  t.match(e?.message, /AuthorizationPolicy shop\/deny-probe/, "names the object");
  t.equal(e?.field, "spec.action", "names the field");
  t.equal(app.current().policies.length, 1, "the last good version is still in the model");
  t.equal(app.current().policies[0]?.action, "deny");

  // A controller restarted with the invalid file on disk still serves the last good version.
  await app.close();
  const again = new ControllerApp(cfg);
  await again.start();
  t.teardown(() => again.close());
  t.equal(again.current().policies.length, 1, "after a restart the last good version is still served");
  t.equal(again.current().policies[0]?.action, "deny");
  t.match(again.current().errors[0]?.message, /deny-probe.*spec\.action/, "... and the error still named");

  await writeFile(join(yamlDir, "policy.yaml"), policy("DENY"));
  while (again.current().errors.length > 0) await once(again, "errors");
  t.pass("fixing the file clears the error");
});
