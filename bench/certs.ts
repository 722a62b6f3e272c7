// Certificates for the reference HAProxy mTLS pair: a throwaway root and two
// leaf certificates (ECDSA P-256, as ambit's workload certificates), with
// SPIFFE URI SANs so both peers carry the same kind of identity. Made with
// the openssl command into the run's work directory.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./procs.js";

export interface PairCerts {
  caPem: string;
  /** Leaf cert + key in one PEM (HAProxy's `crt`). */
  clientPem: string;
  serverPem: string;
}

async function leaf(
  dir: string,
  name: string,
  spiffe: string,
  ca: { cert: string; key: string },
): Promise<string> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const crt = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=URI:${spiffe},DNS:${name}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  await run("openssl", ["req", "-new", "-key", key, "-subj", `/O=ambit-bench/CN=${name}`, "-out", csr]);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-CAcreateserial",
    "-days",
    "2",
    "-sha256",
    "-extfile",
    ext,
    "-out",
    crt,
  ]);
  const pem = join(dir, `${name}.pem`);
  writeFileSync(pem, readFileSync(crt, "utf8") + readFileSync(key, "utf8"));
  return pem;
}

export async function makePairCerts(dir: string): Promise<PairCerts> {
  const caKey = join(dir, "ca.key");
  const caCert = join(dir, "ca.crt");
  await run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", caKey]);
  await run("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    caKey,
    "-subj",
    "/O=ambit-bench/CN=bench-root",
    "-days",
    "2",
    "-sha256",
    "-out",
    caCert,
  ]);
  const ca = { cert: caCert, key: caKey };
  return {
    caPem: caCert,
    clientPem: await leaf(dir, "client", "spiffe://bench.local/ns/bench/sa/client", ca),
    serverPem: await leaf(dir, "server", "spiffe://bench.local/ns/bench/sa/server", ca),
  };
}
