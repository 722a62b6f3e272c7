// The CA's decisions without the network: which identity a request asks for,
// whether the caller's node may have it, who the caller is (tokens.json), and
// the handler under fuzzed input (it refuses; it never signs what it should not).
import { mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import t from "tap";
import {
  bearerToken,
  FirstOfAuthenticator,
  newNodeToken,
  StaticTokenAuthenticator,
  TokenFileAuthenticator,
  writeTokenFile,
} from "../../controller/ca/authn.js";
import { CertificateAuthority } from "../../controller/ca/authority.js";
import { authorizeIdentity, requestedIdentity } from "../../controller/ca/authz.js";
import { CaRefusal, createCertificateHandler } from "../../controller/ca/service.js";
import { IstioCertificateRequestSchema } from "../../core/gen/citadel_pb.js";
import { generateKeyPair } from "../../core/identity/keys.js";
import { subtle, x509 } from "../../core/identity/peculiar.js";
import { createCsr, spiffeIdOf } from "../../core/identity/x509.js";
import { NODE1_TOKEN, TD, tempDir } from "./ca-harness.js";

const CLIENT = `spiffe://${TD}/ns/demo/sa/client`;
const pods = (node: string) => (node === "node-1" ? [{ namespace: "demo", serviceAccount: "client" }] : []);

t.test("requestedIdentity", async (t) => {
  t.match(requestedIdentity([CLIENT], undefined), {
    ok: true,
    uri: CLIENT,
    identity: { namespace: "demo", serviceAccount: "client" },
  });
  t.match(requestedIdentity([], CLIENT), { ok: true, uri: CLIENT }, "ImpersonatedIdentity alone");
  t.match(requestedIdentity([CLIENT], CLIENT), { ok: true }, "both, agreeing");
  t.match(requestedIdentity([`spiffe://${TD}/ns/demo/sa/x`], CLIENT), {
    ok: false,
    reason: "identity_mismatch",
  });
  t.match(requestedIdentity([], undefined), { ok: false, reason: "no_identity" });
  t.match(requestedIdentity([], ""), { ok: false, reason: "no_identity" });
  t.match(requestedIdentity([CLIENT, `spiffe://${TD}/ns/demo/sa/x`], undefined), {
    ok: false,
    reason: "ambiguous_identity",
  });
  t.match(requestedIdentity(["spiffe://td/ns/a"], undefined), {
    ok: false,
    reason: "invalid_identity",
    message: /field path/,
  });
});

t.test("authorizeIdentity: only pods of the caller's node, only the mesh's trust domain", async (t) => {
  const id = { trustDomain: TD, namespace: "demo", serviceAccount: "client" };
  t.same(authorizeIdentity("node-1", id, pods, TD), { ok: true });
  t.match(authorizeIdentity("node-2", id, pods, TD), {
    ok: false,
    reason: "not_on_node",
    message: /spiffe:\/\/cluster\.local\/ns\/demo\/sa\/client is not running on node node-2/,
  });
  t.match(authorizeIdentity("node-1", { ...id, serviceAccount: "default" }, pods, TD), {
    ok: false,
    reason: "not_on_node",
  });
  t.match(authorizeIdentity("node-1", { ...id, namespace: "other" }, pods, TD), {
    ok: false,
    reason: "not_on_node",
  });
  t.match(authorizeIdentity("node-1", { ...id, trustDomain: "evil.example" }, pods, TD), {
    ok: false,
    reason: "wrong_trust_domain",
  });
});

t.test("bearer tokens", async (t) => {
  const md = (v?: string) => {
    const m = new grpc.Metadata();
    if (v !== undefined) m.set("authorization", v);
    return m;
  };
  t.equal(bearerToken(md("Bearer abc")), "abc");
  t.equal(bearerToken(md("bearer abc")), "abc");
  t.equal(bearerToken(md("Basic abc")), undefined);
  t.equal(bearerToken(md()), undefined);
  const a = new StaticTokenAuthenticator({ [NODE1_TOKEN]: "node-1" });
  t.same(await a.authenticate(md(`Bearer ${NODE1_TOKEN}`)), { node: "node-1", via: "token" });
  t.equal(await a.authenticate(md(`Bearer ${NODE1_TOKEN.slice(0, -1)}`)), null);
  const chained = new FirstOfAuthenticator([new StaticTokenAuthenticator({}), a]);
  t.same(await chained.authenticate(md(`Bearer ${NODE1_TOKEN}`)), { node: "node-1", via: "token" });
});

t.test("tokens.json: read when it changes; a bad file keeps the last good tokens", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ambit-tokens-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "tokens.json");
  const auth = new TokenFileAuthenticator(file);
  const md = (token: string) => {
    const m = new grpc.Metadata();
    m.set("authorization", `Bearer ${token}`);
    return m;
  };
  t.equal(await auth.authenticate(md(NODE1_TOKEN)), null, "no file yet: nobody");
  // Written atomically (as `ambit up` does), so a reader never sees half a file.
  const write = async (text: string) => {
    await writeFile(`${file}.tmp`, text);
    await rename(`${file}.tmp`, file);
  };
  await write(JSON.stringify({ [NODE1_TOKEN]: "node-1" }));
  t.same(await auth.authenticate(md(NODE1_TOKEN)), { node: "node-1", via: "token" });
  const token2 = "a-second-token-for-node-2-xyz";
  await write(JSON.stringify({ [NODE1_TOKEN]: "node-1", [token2]: "node-2" }));
  t.same(await auth.authenticate(md(token2)), { node: "node-2", via: "token" }, "a node added later");
  await write("{ not json");
  t.same(
    await auth.authenticate(md(token2)),
    { node: "node-2", via: "token" },
    "bad file: last good tokens stay",
  );
  t.match(auth.lastError, { code: "CONFIG", message: /tokens\.json: not JSON/ });
  await write(JSON.stringify({ short: "node-3" }));
  await auth.authenticate(md(token2));
  t.match(auth.lastError, { message: /shorter than 16/ });
  await rm(file);
  t.equal(await auth.authenticate(md(NODE1_TOKEN)), null, "file removed: nobody");

  // What `ambit up` does: fresh tokens, written owner-only.
  const fresh = newNodeToken();
  t.ok(fresh.length >= 43, "256-bit token");
  t.not(fresh, newNodeToken());
  await writeTokenFile(file, { [fresh]: "node-1" });
  t.equal((await stat(file)).mode & 0o777, 0o600);
  t.same(await auth.authenticate(md(fresh)), { node: "node-1", via: "token" });
  await t.rejects(writeTokenFile(file, { x: "node-1" }), { code: "CONFIG" }, "a short token is not written");
});

t.test(
  "the handler under fuzzed requests: refuses with a reason, never signs a foreign identity",
  async (t) => {
    const ca = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
    const handle = createCertificateHandler({
      ca,
      authenticator: new StaticTokenAuthenticator({ [NODE1_TOKEN]: "node-1" }),
      podsOnNode: pods,
    });
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${NODE1_TOKEN}`);
    const goodCsr = await createCsr(CLIENT, await generateKeyPair());
    const body = goodCsr.replace(/-----[^-]+-----|\s/g, "");

    const csrArb = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc
        .base64String({ maxLength: 400 })
        .map((b) => `-----BEGIN CERTIFICATE REQUEST-----\n${b}\n-----END CERTIFICATE REQUEST-----`),
      fc
        .integer({ min: 0, max: body.length - 1 })
        .map(
          (n) =>
            `-----BEGIN CERTIFICATE REQUEST-----\n${body.slice(0, n)}\n-----END CERTIFICATE REQUEST-----`,
        ),
      fc.constant(goodCsr),
    );
    const impArb = fc.option(
      fc.oneof(
        fc.string({ maxLength: 80 }),
        fc.constantFrom(
          CLIENT,
          `spiffe://${TD}/ns/demo/sa/server`,
          `spiffe://${TD}/ns/kube-system/sa/admin`,
          `spiffe://evil/ns/demo/sa/client`,
        ),
      ),
      { nil: undefined },
    );
    let signed = 0;
    await fc.assert(
      fc.asyncProperty(csrArb, impArb, fc.bigInt({ min: -10n, max: 10n ** 12n }), async (csr, imp, ttl) => {
        const req = create(IstioCertificateRequestSchema, {
          csr,
          validityDuration: ttl,
          ...(imp !== undefined ? { metadata: { ImpersonatedIdentity: imp } } : {}),
        });
        try {
          const res = await handle(req, md);
          signed++;
          // Whatever got through is node-1's pod identity, nothing else.
          return spiffeIdOf(res.certChain[0]) === CLIENT;
        } catch (e) {
          return e instanceof CaRefusal && e.reason !== "ca_error";
        }
      }),
      { numRuns: 300 },
    );
    t.ok(signed > 0, `some requests were valid and signed (${signed})`);
  },
);

t.test("a CSR with a weak key is refused", async (t) => {
  const ca = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const alg = {
    name: "RSASSA-PKCS1-v1_5",
    hash: "SHA-256",
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 1024,
  };
  const keys = await subtle.generateKey(alg, true, ["sign", "verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "",
    keys: keys as never,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: CLIENT }])],
  });
  await t.rejects(ca.signWorkload(csr.toString("pem"), CLIENT, 60), {
    code: "INVALID_FIELD",
    message: /rsa 1024 bits is not allowed/,
  });
});
