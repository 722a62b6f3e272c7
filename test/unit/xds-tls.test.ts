// The same delta ADS server and client over mutual TLS (as the controller
// serves it on 15012), with a throwaway CA made by openssl.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import t from "tap";
import { DeltaAdsServer } from "../../controller/push/server.js";
import { DeltaAdsClient } from "../../core/xds/client.js";
import { ADDRESS_TYPE } from "../../core/xds/type-urls.js";
import { addressSet, nextEvent, pod } from "./xds-harness.js";

function makePki(dir: string) {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "1",
    "-subj",
    "/O=ambit-test/CN=root",
  );
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  writeFileSync(
    join(dir, "client.ext"),
    "subjectAltName=URI:spiffe://cluster.local/ns/ambit-system/sa/ztunnel\nextendedKeyUsage=clientAuth\n",
  );
  for (const who of ["server", "client"]) {
    run("req", ...ec, "-keyout", `${who}.key`, "-out", `${who}.csr`, "-subj", `/CN=${who}`);
    run(
      "x509",
      "-req",
      "-in",
      `${who}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${who}.crt`,
      "-days",
      "1",
      "-extfile",
      `${who}.ext`,
    );
  }
  const read = (f: string) => readFileSync(join(dir, f));
  return {
    ca: read("ca.crt"),
    serverKey: read("server.key"),
    serverCert: read("server.crt"),
    clientKey: read("client.key"),
    clientCert: read("client.crt"),
  };
}

t.test("delta ADS over mutual TLS", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ambit-xds-tls-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki(dir);

  const server = new grpc.Server();
  const ads = new DeltaAdsServer({ debounceMs: 1 });
  ads.register(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createSsl(
        pki.ca,
        [{ private_key: pki.serverKey, cert_chain: pki.serverCert }],
        true,
      ),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  t.teardown(async () => {
    await ads.close();
    server.forceShutdown();
  });
  const a = pod("a", "10.244.1.1");
  ads.publish(ADDRESS_TYPE, addressSet([a]).resources);

  const names: string[] = [];
  const client = new DeltaAdsClient({
    address: `127.0.0.1:${port}`,
    credentials: grpc.credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert),
    node: { id: "ztunnel~tls" },
    handlers: [{ typeUrl: ADDRESS_TYPE, apply: (u) => void names.push(...u.added.map((x) => x.name)) }],
  });
  t.teardown(() => client.close());
  const connected = nextEvent<{ nodeId: string }>(ads, "connect");
  client.start();
  await client.ready();
  t.same(names, [a.uid]);
  t.equal((await connected).nodeId, "ztunnel~tls");
});
