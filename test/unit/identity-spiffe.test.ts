// SPIFFE ids: formatting, strict parsing, and reading the id out of a
// certificate's SAN without being fooled by crafted SAN values.
import { X509Certificate } from "node:crypto";
import fc from "fast-check";
import t from "tap";
import { AmbitError } from "../../core/errors/errors.js";
import { generateKeyPair, P256 } from "../../core/identity/keys.js";
import { x509 } from "../../core/identity/peculiar.js";
import { parseSpiffeId, sameIdentity, spiffeId, tryParseSpiffeId } from "../../core/identity/spiffe.js";
import { meshPeerIdentity, spiffeIdOf, subjectAltNames } from "../../core/identity/x509.js";

t.test("spiffeId formats, parseSpiffeId inverts", async (t) => {
  const id = { trustDomain: "cluster.local", namespace: "demo", serviceAccount: "client" };
  t.equal(spiffeId(id), "spiffe://cluster.local/ns/demo/sa/client");
  t.same(parseSpiffeId("spiffe://cluster.local/ns/demo/sa/client"), id);
  t.ok(sameIdentity(parseSpiffeId(spiffeId(id)), id));
});

t.test("round trip for any valid parts", async () => {
  const seg = fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/).filter((s) => s !== "." && s !== "..");
  const td = fc.stringMatching(/^[a-z0-9._-]{1,60}$/);
  fc.assert(
    fc.property(td, seg, seg, (trustDomain, namespace, serviceAccount) => {
      const id = { trustDomain, namespace, serviceAccount };
      return sameIdentity(parseSpiffeId(spiffeId(id)), id);
    }),
  );
});

t.test("parseSpiffeId refuses anything else, naming the field", async (t) => {
  const bad: Array<[string, string]> = [
    ["", "scheme"],
    ["http://cluster.local/ns/a/sa/b", "scheme"],
    ["SPIFFE://cluster.local/ns/a/sa/b", "scheme"],
    ["spiffe://cluster.local", "path"],
    ["spiffe:///ns/a/sa/b", "trustDomain"],
    ["spiffe://Cluster.Local/ns/a/sa/b", "trustDomain"],
    ["spiffe://cluster.local:443/ns/a/sa/b", "trustDomain"],
    ["spiffe://user@cluster.local/ns/a/sa/b", "trustDomain"],
    ["spiffe://cluster.local/ns/a/sa/b/", "path"],
    ["spiffe://cluster.local/ns/a/sa/b/c", "path"],
    ["spiffe://cluster.local/ns/a/sa", "path"],
    ["spiffe://cluster.local/sa/b/ns/a", "path"],
    ["spiffe://cluster.local/ns//sa/b", "namespace"],
    ["spiffe://cluster.local/ns/../sa/b", "namespace"],
    ["spiffe://cluster.local/ns/a/sa/b?x=1", "serviceAccount"],
    ["spiffe://cluster.local/ns/a/sa/b#f", "serviceAccount"],
    ["spiffe://cluster.local/ns/a%2f/sa/b", "namespace"],
    [`spiffe://cluster.local/ns/${"a".repeat(3000)}/sa/b`, "uri"],
  ];
  for (const [uri, field] of bad) {
    t.throws(
      () => parseSpiffeId(uri),
      { code: "INVALID_FIELD", details: { field } },
      JSON.stringify(uri.slice(0, 60)),
    );
    t.equal(tryParseSpiffeId(uri), undefined);
  }
  t.throws(
    () => spiffeId({ trustDomain: "td", namespace: "a/b", serviceAccount: "c" }),
    AmbitError,
    "a namespace with a slash cannot be formatted",
  );
});

t.test("subjectAltNames reads node's SAN string, quoted values as one entry", async (t) => {
  t.same(subjectAltNames("URI:spiffe://td/ns/a/sa/b, DNS:x.y, IP Address:127.0.0.1"), [
    { type: "URI", value: "spiffe://td/ns/a/sa/b" },
    { type: "DNS", value: "x.y" },
    { type: "IP Address", value: "127.0.0.1" },
  ]);
  t.same(subjectAltNames('URI:"http://x, URI:spiffe://td/ns/a/sa/b", DNS:z'), [
    { type: "URI", value: "http://x, URI:spiffe://td/ns/a/sa/b" },
    { type: "DNS", value: "z" },
  ]);
  t.same(subjectAltNames(undefined), []);
});

async function certWithSans(sans: Array<{ type: "url" | "dns"; value: string }>): Promise<X509Certificate> {
  const keys = await generateKeyPair();
  const c = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=t",
    keys: keys as never,
    signingAlgorithm: P256,
    notBefore: new Date(Date.now() - 1000),
    notAfter: new Date(Date.now() + 60_000),
    extensions: [new x509.SubjectAlternativeNameExtension(sans)],
  });
  return new X509Certificate(c.toString("pem"));
}

t.test("spiffeIdOf: one strict SPIFFE URI SAN, from node's certificate objects", async (t) => {
  const good = await certWithSans([
    { type: "url", value: "spiffe://cluster.local/ns/demo/sa/client" },
    { type: "dns", value: "x" },
  ]);
  t.equal(spiffeIdOf(good), "spiffe://cluster.local/ns/demo/sa/client");
  t.equal(spiffeIdOf(good.toString()), "spiffe://cluster.local/ns/demo/sa/client", "from PEM");
  t.equal(
    spiffeIdOf({ subjectaltname: good.subjectAltName } as never),
    "spiffe://cluster.local/ns/demo/sa/client",
    "from tls.PeerCertificate",
  );

  const forged = await certWithSans([
    { type: "url", value: "http://x, URI:spiffe://cluster.local/ns/demo/sa/admin" },
  ]);
  t.match(forged.subjectAltName, /^URI:"/, "node quotes the crafted value");
  t.equal(spiffeIdOf(forged), undefined, "a crafted SAN does not yield an identity");

  const two = await certWithSans([
    { type: "url", value: "spiffe://cluster.local/ns/demo/sa/a" },
    { type: "url", value: "spiffe://cluster.local/ns/demo/sa/b" },
  ]);
  t.equal(spiffeIdOf(two), undefined, "two URI SANs: ambiguous, no identity");
  t.equal(spiffeIdOf(await certWithSans([{ type: "dns", value: "x" }])), undefined);
  t.equal(
    spiffeIdOf(await certWithSans([{ type: "url", value: "spiffe://cluster.local/ns/demo" }])),
    undefined,
  );
  t.equal(spiffeIdOf(undefined), undefined);

  t.equal(meshPeerIdentity(good, "cluster.local"), "spiffe://cluster.local/ns/demo/sa/client");
  t.equal(meshPeerIdentity(good, "cluster"), undefined, "a prefix of the trust domain is not the trust domain");
  t.equal(meshPeerIdentity(good, "other.td"), undefined, "another trust domain");
});
