// Chaining ambit-cni into a node's CNI configuration and taking it out:
// the pure edits, then install/uninstall on a real directory.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import { addAmbitPlugin, hasAmbitPlugin, pickPrimaryConfig, removeAmbitPlugin } from "../../cni/conflist.js";
import { installCni, PLUGIN_DIR_NAME, uninstallCni, wrapperScript } from "../../cni/install.js";

const bridgeList = {
  cniVersion: "1.0.0",
  name: "podnet",
  plugins: [
    { type: "bridge", bridge: "cni0", isGateway: true, ipam: { type: "host-local", subnet: "10.22.0.0/16" } },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};
const plugin = { type: "ambit-cni" as const, socketPath: "/var/run/ambit/node-agent.sock" };

t.test("the primary configuration is the lexically first CNI file", async (t) => {
  t.equal(
    pickPrimaryConfig(["20-b.conflist", "10-a.conf", "README", "05-x.json.bak", "99.json"]),
    "10-a.conf",
  );
  t.equal(pickPrimaryConfig(["notes.txt"]), undefined);
});

t.test("add appends to the chain, keeps everything else, is idempotent", async (t) => {
  const text = JSON.stringify(bridgeList);
  const once = addAmbitPlugin("10-podnet.conflist", text, plugin);
  t.ok(once.changed);
  t.equal(once.fileName, "10-podnet.conflist");
  const parsed = JSON.parse(once.text);
  t.same(parsed.plugins.slice(0, 2), bridgeList.plugins, "the existing plugins, in order");
  t.same(parsed.plugins[2], plugin, "ambit-cni last");
  t.equal(parsed.name, "podnet");
  const twice = addAmbitPlugin("10-podnet.conflist", once.text, plugin);
  t.notOk(twice.changed, "adding again changes nothing");
  t.equal(twice.text, once.text);
  // A changed socket path replaces the entry (one ambit-cni, still last).
  const moved = addAmbitPlugin("10-podnet.conflist", once.text, { ...plugin, socketPath: "/run/x.sock" });
  const mp = JSON.parse(moved.text).plugins;
  t.equal(mp.filter((p: { type: string }) => p.type === "ambit-cni").length, 1);
  t.equal(mp[2].socketPath, "/run/x.sock");
  t.ok(hasAmbitPlugin("10-podnet.conflist", moved.text));
});

t.test("a single-plugin .conf becomes a .conflist", async (t) => {
  const conf = {
    cniVersion: "0.4.0",
    name: "net",
    type: "bridge",
    bridge: "br0",
    ipam: { type: "host-local" },
  };
  const r = addAmbitPlugin("10-net.conf", JSON.stringify(conf), plugin);
  t.equal(r.fileName, "10-net.conflist");
  t.same(JSON.parse(r.text), {
    cniVersion: "0.4.0",
    name: "net",
    plugins: [{ type: "bridge", bridge: "br0", ipam: { type: "host-local" } }, plugin],
  });
});

t.test("remove takes only ambit-cni out", async (t) => {
  const withAmbit = addAmbitPlugin("a.conflist", JSON.stringify(bridgeList), plugin).text;
  const r = removeAmbitPlugin("a.conflist", withAmbit);
  t.ok(r.changed);
  t.same(JSON.parse(r.text), bridgeList);
  t.notOk(hasAmbitPlugin("a.conflist", r.text));
  t.notOk(removeAmbitPlugin("a.conflist", r.text).changed, "nothing to remove: unchanged");
});

t.test("bad files are refused with the file named", async (t) => {
  t.throws(() => addAmbitPlugin("x.conflist", "{", plugin), {
    code: "CNI_CONFLIST",
    message: /x\.conflist: not JSON/,
  });
  t.throws(() => addAmbitPlugin("x.conflist", "[]", plugin), /must be a JSON object/);
  t.throws(() => addAmbitPlugin("x.conflist", '{"plugins": {}}', plugin), /plugins: must be a list/);
  t.throws(() => addAmbitPlugin("x.conf", '{"name": "n"}', plugin), /neither a plugin list/);
  t.throws(() => addAmbitPlugin("x.conflist", '{"plugins": []}', plugin), /no plugin to chain after/);
});

t.test("install and uninstall on a real directory", async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-cni-inst-"));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const binDir = path.join(root, "bin");
  const confDir = path.join(root, "net.d");
  const src = path.join(root, "dist-cni");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "main.js"), "console.log('x')\n");
  fs.writeFileSync(path.join(src, "wire.js"), "\n");
  fs.writeFileSync(path.join(src, "main.js.map"), "{}");

  // No configuration yet: the binary is installed, nothing chained.
  const early = await installCni({
    binDir,
    confDir,
    socketPath: "/s.sock",
    sourceDir: src,
    node: "/usr/bin/node",
  });
  t.equal(early.configFile, undefined);
  t.ok(fs.existsSync(path.join(binDir, "ambit-cni")));

  fs.mkdirSync(confDir);
  fs.writeFileSync(
    path.join(confDir, "10-podnet.conf"),
    JSON.stringify({ cniVersion: "1.0.0", name: "podnet", type: "bridge" }),
  );
  fs.writeFileSync(path.join(confDir, "20-other.conflist"), JSON.stringify(bridgeList));
  const r = await installCni({
    binDir,
    confDir,
    socketPath: "/s.sock",
    sourceDir: src,
    copyNode: true,
    node: process.execPath,
    hostBinDir: "/opt/cni/bin",
  });
  t.equal(r.configFile, path.join(confDir, "10-podnet.conflist"));
  t.ok(r.configChanged);
  t.notOk(fs.existsSync(path.join(confDir, "10-podnet.conf")), "the .conf was replaced by its .conflist");
  t.same(
    JSON.parse(fs.readFileSync(path.join(confDir, "20-other.conflist"), "utf8")),
    bridgeList,
    "other files untouched",
  );
  t.ok(hasAmbitPlugin("x", fs.readFileSync(r.configFile!, "utf8")));
  const wrapper = fs.readFileSync(path.join(binDir, "ambit-cni"), "utf8");
  t.equal(
    wrapper,
    wrapperScript(`/opt/cni/bin/${PLUGIN_DIR_NAME}/node`, `/opt/cni/bin/${PLUGIN_DIR_NAME}/main.js`),
  );
  t.equal(fs.statSync(path.join(binDir, "ambit-cni")).mode & 0o777, 0o755);
  t.ok(fs.existsSync(path.join(binDir, PLUGIN_DIR_NAME, "wire.js")));
  t.notOk(fs.existsSync(path.join(binDir, PLUGIN_DIR_NAME, "main.js.map")));
  t.equal(fs.statSync(path.join(binDir, PLUGIN_DIR_NAME, "node")).size, fs.statSync(process.execPath).size);

  const copied = fs.statSync(path.join(binDir, PLUGIN_DIR_NAME, "node"));
  t.equal(
    Math.trunc(copied.mtimeMs),
    Math.trunc(fs.statSync(process.execPath).mtimeMs),
    "node copied with its mtime",
  );
  const again = await installCni({
    binDir,
    confDir,
    socketPath: "/s.sock",
    sourceDir: src,
    copyNode: true,
    node: process.execPath,
    hostBinDir: "/opt/cni/bin",
  });
  t.equal(
    fs.statSync(path.join(binDir, PLUGIN_DIR_NAME, "node")).ino,
    copied.ino,
    "an unchanged node is not copied again",
  );
  t.notOk(again.configChanged, "a second install leaves the configuration alone");

  const edited = await uninstallCni({ binDir, confDir });
  t.same(edited, [path.join(confDir, "10-podnet.conflist")]);
  t.notOk(hasAmbitPlugin("x", fs.readFileSync(path.join(confDir, "10-podnet.conflist"), "utf8")));
  t.notOk(fs.existsSync(path.join(binDir, "ambit-cni")));
  t.notOk(fs.existsSync(path.join(binDir, PLUGIN_DIR_NAME)));
});

t.test("the wrapper quotes paths for the shell", async (t) => {
  t.equal(
    wrapperScript("/a b/node", "/it's/main.js").split("\n")[2],
    `exec '/a b/node' '/it'\\''s/main.js' "$@"`,
  );
});
