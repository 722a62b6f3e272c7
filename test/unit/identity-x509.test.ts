// Chains and handshakes with issued workload certificates: verifyChain's
// verdicts, and real TLS 1.3 between two node sockets, mutual, each side
// reading the other's SPIFFE id; a certificate from another root is refused.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import * as tls from "node:tls";
import t from "tap";
import { CertificateAuthority } from "../../controller/ca/authority.js";
import { generateKeyPair, privateKeyToPem } from "../../core/identity/keys.js";
import {
  createCsr,
  isExpired,
  notAfter,
  parseChain,
  secondsUntilExpiry,
  spiffeIdOf,
  verifyChain,
} from "../../core/identity/x509.js";
import { TD, tempDir, writeUserCa } from "./ca-harness.js";

interface Workload {
  uri: string;
  keyPem: string;
  /** leaf + intermediates */
  certPem: string;
  rootPem: string;
  chain: string[];
}

async function workload(ca: CertificateAuthority, sa: string, ttl = 3600): Promise<Workload> {
  const uri = `spiffe://${TD}/ns/demo/sa/${sa}`;
  const keys = await generateKeyPair();
  const signed = await ca.signWorkload(await createCsr(uri, keys), uri, ttl);
  return {
    uri,
    keyPem: await privateKeyToPem(keys.privateKey),
    certPem: signed.certChain.slice(0, -1).join(""),
    rootPem: ca.rootPem,
    chain: signed.certChain,
  };
}

/** HBONE's TLS shape: TLS 1.3, client certificates required, identity read from the SAN (no hostname check). */
async function handshake(
  t: { teardown(fn: () => unknown): void },
  server: Workload,
  client: Workload,
): Promise<
  { ok: true; serverSaw: string | undefined; clientSaw: string | undefined } | { ok: false; error: string }
> {
  const seen: { serverSaw?: string | undefined } = {};
  const srv = tls.createServer(
    {
      key: server.keyPem,
      cert: server.certPem,
      ca: [server.rootPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.3",
    },
    (s) => {
      seen.serverSaw = spiffeIdOf(s.getPeerX509Certificate());
      s.end("ok");
    },
  );
  srv.on("tlsClientError", () => {});
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const port = (srv.address() as AddressInfo).port;
  return new Promise((resolve) => {
    const c = tls.connect({
      host: "127.0.0.1",
      port,
      key: client.keyPem,
      cert: client.certPem,
      ca: [client.rootPem],
      minVersion: "TLSv1.3",
      checkServerIdentity: () => undefined,
    });
    let clientSaw: string | undefined;
    c.on("secureConnect", () => {
      clientSaw = spiffeIdOf(c.getPeerCertificate());
    });
    let data = "";
    c.on("data", (d) => {
      data += String(d);
    });
    c.on("end", () => {
      c.destroy();
      resolve(
        data === "ok"
          ? { ok: true, serverSaw: seen.serverSaw, clientSaw }
          : { ok: false, error: `closed without answer (${data})` },
      );
    });
    c.on("error", (e) => resolve({ ok: false, error: e.message }));
  });
}

t.test("TLS 1.3 mutual handshake between two issued workload certificates", async (t) => {
  const ca = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const a = await workload(ca, "client");
  const b = await workload(ca, "server");
  const r = await handshake(t, b, a);
  t.same(r, { ok: true, serverSaw: a.uri, clientSaw: b.uri }, "each side reads the other's SPIFFE id");
});

t.test("through a user-provided intermediate too", async (t) => {
  const dir = await tempDir(t);
  await writeUserCa(dir, { intermediate: true });
  const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  const r = await handshake(t, await workload(ca, "server"), await workload(ca, "client"));
  t.equal(r.ok, true, r.ok ? "" : r.error);
});

t.test("a client certificate from another root is refused by the server", async (t) => {
  const mesh = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const rogue = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const server = await workload(mesh, "server");
  const intruder = await workload(rogue, "client");
  // The intruder trusts the mesh root so that only the server's check can stop it.
  const r = await handshake(t, server, { ...intruder, rootPem: mesh.rootPem });
  t.equal(r.ok, false, "handshake fails");
  // And the other way: a server of another root is refused by a mesh client.
  const r2 = await handshake(
    t,
    { ...(await workload(rogue, "server")), rootPem: mesh.rootPem },
    await workload(mesh, "client"),
  );
  t.equal(r2.ok, false);
  if (!r2.ok) t.match(r2.error, /certificate/i);
});

t.test("verifyChain verdicts", async (t) => {
  const ca = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const other = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const w = await workload(ca, "client", 60);
  t.ok(verifyChain(w.chain, [ca.rootPem]).ok, "with the root carried last");
  t.ok(verifyChain(parseChain(w.certPem), [ca.rootPem]).ok, "without it");
  const foreign = verifyChain(w.chain, [other.rootPem]);
  t.same(foreign, { ok: false, reason: "chain does not lead to a trusted root" });
  const later = new Date(Date.now() + 120_000);
  const expired = verifyChain(w.chain, [ca.rootPem], later);
  t.equal(expired.ok, false);
  if (!expired.ok) t.match(expired.reason, "expired");
  t.ok(isExpired(w.certPem, later));
  t.notOk(isExpired(w.certPem));
  t.ok(secondsUntilExpiry(w.certPem) <= 60 && secondsUntilExpiry(w.certPem) > 50);
  t.equal(notAfter(w.certPem).getTime() % 1000, 0, "whole seconds");
  t.same(verifyChain([], [ca.rootPem]), { ok: false, reason: "empty chain" });
  // A leaf presented as if it were an issuer: not a CA.
  const w2 = await workload(ca, "server");
  const fake = verifyChain([w.certPem, w2.certPem], [ca.rootPem]);
  t.equal(fake.ok, false);
  if (!fake.ok) t.match(fake.reason, "not a CA");
  t.throws(() => parseChain(["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]), {
    code: "INVALID_FIELD",
  });
});
