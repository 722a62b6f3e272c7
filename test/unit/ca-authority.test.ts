// The CertificateAuthority: a root made on first start and kept on disk,
// user-provided roots and intermediates in istiod's plug-in layout, and what
// it puts into the certificates it signs.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import { CertificateAuthority } from "../../controller/ca/authority.js";
import { generateKeyPair } from "../../core/identity/keys.js";
import { createCsr, spiffeIdOf, verifyChain } from "../../core/identity/x509.js";
import { TD, tempDir, writeUserCa } from "./ca-harness.js";

const CLIENT = `spiffe://${TD}/ns/demo/sa/client`;

async function leafFrom(ca: CertificateAuthority, identity = CLIENT, ttl = 3600, csrIdentity = identity) {
  return ca.signWorkload(await createCsr(csrIdentity, await generateKeyPair()), identity, ttl);
}

t.test("first start creates a root, kept in the directory and reused after a restart", async (t) => {
  const dir = join(await tempDir(t), "ca");
  const first = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  t.equal(first.origin, "generated");
  const root = new X509Certificate(first.rootPem);
  t.ok(root.ca, "CA:TRUE");
  t.ok(root.checkIssued(root) && root.verify(root.publicKey), "self-signed");
  t.match(root.subject, `O=${TD}`);
  t.equal((await stat(join(dir, "ca-key.pem"))).mode & 0o777, 0o600, "key readable by owner only");
  t.equal((await stat(dir)).mode & 0o777, 0o700);
  t.ok(
    new Date(root.validTo).getTime() - Date.now() > 3000 * 86400_000,
    "long-lived root (10 years by default)",
  );
  const leaf = await leafFrom(first);

  const second = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  t.equal(second.rootPem, first.rootPem, "same root after restart");
  t.ok(verifyChain(leaf.certChain, [second.rootPem]).ok, "old leaves still verify");
  const leaf2 = await leafFrom(second);
  t.ok(verifyChain(leaf2.certChain, [first.rootPem]).ok, "new leaves chain to the same root");
});

t.test(
  "signWorkload: the identity decides, the CSR's SANs are ignored; lifetime capped by the CA",
  async (t) => {
    const dir = await tempDir(t);
    // A root that lives 10 minutes: no leaf may outlive it.
    const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD, rootTtlDays: 600 / 86400 });
    const signed = await leafFrom(ca, CLIENT, 86400, `spiffe://${TD}/ns/kube-system/sa/admin`);
    const leaf = new X509Certificate(signed.certChain[0] as string);
    t.equal(spiffeIdOf(leaf), CLIENT);
    t.equal(leaf.subjectAltName, `URI:${CLIENT}`, "nothing from the CSR");
    t.equal(
      new Date(leaf.validTo).getTime(),
      signed.notAfter.getTime(),
      "the returned notAfter is the certificate's",
    );
    t.ok(signed.notAfter.getTime() <= ca.notAfter.getTime(), "capped at the CA's own expiry");
    t.ok(signed.notAfter.getTime() - Date.now() < 700_000);
    await t.rejects(ca.signWorkload("not a csr", CLIENT, 60), { code: "INVALID_FIELD" });
    await t.rejects(leafFrom(ca, CLIENT, 0), { code: "INVALID_FIELD" }, "a zero lifetime is refused");
  },
);

t.test("issueServing: the controller's own TLS certificate", async (t) => {
  const ca = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const s = await ca.issueServing({
    dnsNames: ["ambit-controller.ambit-system.svc"],
    ips: ["127.0.0.1", "::1"],
  });
  const leaf = new X509Certificate(s.certChainPem[0] as string);
  t.equal(
    leaf.subjectAltName,
    "DNS:ambit-controller.ambit-system.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
  );
  t.ok(leaf.checkHost("ambit-controller.ambit-system.svc"));
  t.ok(leaf.checkIP("127.0.0.1"));
  t.equal(s.certChainPem.length, 1, "no root in what the server presents");
  t.ok(verifyChain(s.certChainPem, [ca.rootPem]).ok);
  t.ok(leaf.checkPrivateKey(createPrivateKey(s.keyPem)));
  await t.rejects(ca.issueServing({ ips: ["not-an-ip"] }), { code: "INVALID_FIELD" });
});

t.test("a user-provided root (RSA, PKCS#1 key file) signs instead of a generated one", async (t) => {
  const dir = await tempDir(t);
  const user = await writeUserCa(dir, { rsaRoot: true });
  const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  t.equal(ca.origin, "provided");
  t.equal(ca.rootPem.trim(), user.rootPem.trim());
  const signed = await leafFrom(ca);
  t.equal(signed.certChain.length, 2);
  t.ok(verifyChain(signed.certChain, [user.rootPem]).ok, "chains to the user's root");
  t.match(new X509Certificate(signed.certChain[0] as string).issuer, "CN=Example Root CA");
  t.equal(
    (await readFile(join(dir, "ca-cert.pem"), "utf8")).trim(),
    user.rootPem.trim(),
    "the user's files are not rewritten",
  );
});

t.test("a user-provided intermediate: chain is leaf, intermediate, root", async (t) => {
  const dir = await tempDir(t);
  const user = await writeUserCa(dir, { intermediate: true });
  const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  t.equal(ca.rootPem.trim(), user.rootPem.trim(), "the root is root-cert.pem");
  const signed = await leafFrom(ca);
  t.equal(signed.certChain.length, 3);
  t.equal(signed.certChain[1]?.trim(), user.caCertPem.trim());
  t.equal(signed.certChain[2]?.trim(), user.rootPem.trim());
  t.ok(
    verifyChain(signed.certChain.slice(0, 2), [user.rootPem]).ok,
    "verifies with the root only as trust anchor",
  );
  t.notOk(
    verifyChain(signed.certChain.slice(0, 1), [user.rootPem]).ok,
    "the leaf alone does not (intermediate needed)",
  );
  const serving = await ca.issueServing({ dnsNames: ["localhost"] });
  t.equal(serving.certChainPem.length, 2, "serving chain carries the intermediate");
});

t.test("bad CA directories are refused, naming the file", async (t) => {
  const onlyCert = await tempDir(t);
  await writeUserCa(onlyCert);
  await rm(join(onlyCert, "ca-key.pem"));
  await t.rejects(CertificateAuthority.loadOrCreate(onlyCert, { trustDomain: TD }), {
    code: "CONFIG",
    message: /ca-cert\.pem exists without ca-key\.pem/,
  });

  const wrongKey = await tempDir(t);
  await writeUserCa(wrongKey);
  const other = await tempDir(t);
  await writeUserCa(other);
  await writeFile(join(wrongKey, "ca-key.pem"), await readFile(join(other, "ca-key.pem")));
  await t.rejects(CertificateAuthority.loadOrCreate(wrongKey, { trustDomain: TD }), {
    code: "CONFIG",
    message: /ca-key\.pem: is not the key of ca-cert\.pem/,
  });

  const noRoot = await tempDir(t);
  await writeUserCa(noRoot, { intermediate: true });
  await rm(join(noRoot, "root-cert.pem"));
  await rm(join(noRoot, "cert-chain.pem"));
  await t.rejects(CertificateAuthority.loadOrCreate(noRoot, { trustDomain: TD }), {
    code: "CONFIG",
    message: /intermediate but no root-cert\.pem/,
  });

  const garbage = await tempDir(t);
  await writeFile(join(garbage, "ca-cert.pem"), "hello");
  await writeFile(join(garbage, "ca-key.pem"), "world");
  await t.rejects(CertificateAuthority.loadOrCreate(garbage, { trustDomain: TD }), {
    code: "CONFIG",
    message: /contains no PEM certificate/,
  });

  await t.rejects(CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: "Bad Domain" }), {
    code: "INVALID_FIELD",
  });
});
