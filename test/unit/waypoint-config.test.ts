import t from "tap";
import { parseWaypointConfig } from "../../waypoint/config.js";

t.test("flags, then environment, then defaults", async (t) => {
  const cfg = parseWaypointConfig(
    ["--gateway", "shop/waypoint", "--xds", "10.0.0.2:15010", "--pod-ip", "10.244.1.9"],
    {},
  );
  t.not(cfg, "help");
  if (cfg === "help") return;
  t.match(cfg, {
    namespace: "shop",
    name: "waypoint",
    serviceAccount: "waypoint",
    caAddress: "10.0.0.2:15010",
    hbonePort: 15008,
    adminPort: 15000,
    metricsPort: 15020,
    readinessPort: 15021,
    accessLogSample: 0.01,
    plainPort: 0,
  });
  const env = parseWaypointConfig([], {
    AMBIT_WAYPOINT: "a/b",
    AMBIT_XDS_ADDRESS: "x:1",
    AMBIT_POD_IP: "10.0.0.9",
    AMBIT_ACCESS_LOG_SAMPLE: "1",
    AMBIT_SERVICE_ACCOUNT: "sa",
  });
  t.match(env, { namespace: "a", name: "b", serviceAccount: "sa", accessLogSample: 1 });
  t.equal(parseWaypointConfig(["--help"], {}), "help");
});

t.test("missing or bad values name the flag", async (t) => {
  t.throws(
    () => parseWaypointConfig(["--xds", "x:1", "--pod-ip", "1.2.3.4"], {}),
    /--gateway NS\/NAME is required/,
  );
  t.throws(
    () => parseWaypointConfig(["--gateway", "nope", "--xds", "x:1", "--pod-ip", "1.2.3.4"], {}),
    /--gateway/,
  );
  t.throws(() => parseWaypointConfig(["--gateway", "a/b", "--pod-ip", "1.2.3.4"], {}), /--xds is required/);
  t.throws(() => parseWaypointConfig(["--gateway", "a/b", "--xds", "x:1"], {}), /--pod-ip is required/);
  t.throws(
    () =>
      parseWaypointConfig(
        ["--gateway", "a/b", "--xds", "x:1", "--pod-ip", "1.2.3.4", "--access-log-sample", "2"],
        {},
      ),
    /--access-log-sample/,
  );
  t.throws(
    () =>
      parseWaypointConfig(
        ["--gateway", "a/b", "--xds", "x:1", "--pod-ip", "1.2.3.4", "--admin-port", "x"],
        {},
      ),
    /--admin-port/,
  );
});
