// ztunnel's hand-written PKCS#10 request (ztunnel/certs/csr.ts) is what the
// CA reads (core/identity/x509.ts readCsr, @peculiar/x509) and what OpenSSL
// verifies; and the ztunnel's code never loads @peculiar/x509.
import { execFileSync } from "node:child_process";
import { createPublicKey } from "node:crypto";
import path from "node:path";
import t from "tap";
import { readCsr } from "../../core/identity/x509.js";
import { newWorkloadKey, workloadCsrDer, workloadCsrPem, workloadKeyPem } from "../../ztunnel/certs/csr.js";

const URI = "spiffe://cluster.local/ns/bench/sa/client";

t.test("the CA reads it: signature checked, the one URI SAN, our public key", async (t) => {
  const key = await newWorkloadKey();
  const csr = await readCsr(workloadCsrPem(URI, key));
  t.same(csr.uris, [URI]);
  t.ok(
    Buffer.from(csr.publicKeySpki).equals(key.publicKey.export({ type: "spki", format: "der" })),
    "the CSR carries our key",
  );
});

t.test("a CSR signed by another key is refused by the CA's reader", async (t) => {
  const key = await newWorkloadKey();
  const other = await newWorkloadKey();
  const forged = workloadCsrPem(URI, { publicKey: key.publicKey, privateKey: other.privateKey });
  await t.rejects(readCsr(forged), { message: /signature does not match/ });
});

t.test("OpenSSL verifies it: empty subject, critical SAN, ecdsa-with-SHA256", async (t) => {
  const key = await newWorkloadKey();
  let text: string;
  try {
    text = execFileSync("openssl", ["req", "-noout", "-verify", "-text"], {
      input: workloadCsrPem(URI, key),
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      t.comment("no openssl on this machine");
      return;
    }
    throw e;
  }
  t.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  t.match(
    text,
    /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/bench\/sa\/client/,
  );
  t.match(text, /NIST CURVE: P-256|ASN1 OID: prime256v1/);
});

t.test("long URIs use long-form DER lengths", async (t) => {
  const key = await newWorkloadKey();
  const long = `spiffe://cluster.local/ns/${"n".repeat(200)}/sa/${"s".repeat(200)}`;
  const csr = await readCsr(workloadCsrPem(long, key));
  t.same(csr.uris, [long]);
  t.throws(() => workloadCsrDer("spiffe://td/ns/é/sa/x", key), /printable ASCII/);
});

t.test("the key PEM is PKCS#8 for the same key", async (t) => {
  const key = await newWorkloadKey();
  const pem = workloadKeyPem(key);
  t.match(pem, /^-----BEGIN PRIVATE KEY-----/);
  t.ok(
    createPublicKey(pem)
      .export({ type: "spki", format: "der" })
      .equals(key.publicKey.export({ type: "spki", format: "der" })),
  );
});

t.test("ztunnel's modules and a CSR never load @peculiar/x509 (the CA's modules do)", async (t) => {
  const build = path.resolve(import.meta.dirname, "../..");
  const probe = (imports: string[]) =>
    execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { createRequire } from "node:module";
         ${imports.map((m, i) => `const m${i} = await import(${JSON.stringify(path.join(build, m))});`).join("\n")}
         const csr = await import(${JSON.stringify(path.join(build, "ztunnel/certs/csr.js"))});
         csr.workloadCsrPem("spiffe://td/ns/a/sa/b", await csr.newWorkloadKey());
         const loaded = Object.keys(createRequire(import.meta.url).cache);
         console.log(loaded.some((k) => k.includes("reflect-metadata") || k.includes("@peculiar")));`,
      ],
      { encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "" } },
    ).trim();
  t.equal(probe(["ztunnel/app.js", "ztunnel/certs/ca-client.js"]), "false", "ztunnel: not loaded");
  t.equal(probe(["core/identity/x509.js"]), "true", "the probe sees it when it is loaded");
});
