// IstioCertificateService/CreateCertificate over real gRPC on loopback: who
// gets a certificate (a pod of the caller's node), for what identity, with
// what lifetime, and that every refusal is a clear status and is counted.
import { X509Certificate } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import t from "tap";
import { bearerToken, type CallerAuthenticator } from "../../controller/ca/authn.js";
import { caMetrics } from "../../controller/ca/service.js";
import {
  type IstioCertificateRequest,
  IstioCertificateRequestSchema,
  type IstioCertificateResponse,
  IstioCertificateResponseSchema,
  IstioCertificateService,
} from "../../core/gen/citadel_pb.js";
import { generateKeyPair, P256 } from "../../core/identity/keys.js";
import { x509 } from "../../core/identity/peculiar.js";
import { createCsr, spiffeIdOf, verifyChain } from "../../core/identity/x509.js";
import { grpcServiceDefinition } from "../../core/xds/grpc-service.js";
import { CaClient } from "../../ztunnel/certs/ca-client.js";
import {
  counterValue,
  NODE1_TOKEN,
  NODE2_TOKEN,
  type RunningCa,
  startCa,
  TD,
  tempDir,
} from "./ca-harness.js";

const CLIENT = `spiffe://${TD}/ns/demo/sa/client`;
const SERVER = `spiffe://${TD}/ns/demo/sa/server`;

type RawClient = grpc.Client & {
  createCertificate(
    req: IstioCertificateRequest,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res?: IstioCertificateResponse) => void,
  ): void;
};
const Ctor = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(IstioCertificateService),
  "IstioCertificateService",
) as unknown as new (
  address: string,
  creds: grpc.ChannelCredentials,
) => RawClient;

type Outcome = { ok: true; chain: string[] } | { ok: false; code: grpc.status; details: string };

async function ask(
  running: RunningCa,
  opts: { csr: string; token?: string; ttl?: number; impersonate?: unknown },
): Promise<Outcome> {
  const client = new Ctor(running.address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (opts.token) md.set("authorization", `Bearer ${opts.token}`);
  const req = create(IstioCertificateRequestSchema, {
    csr: opts.csr,
    validityDuration: BigInt(opts.ttl ?? 0),
    ...(opts.impersonate !== undefined
      ? { metadata: { ImpersonatedIdentity: opts.impersonate as string } }
      : {}),
  });
  try {
    return await new Promise<Outcome>((resolve) =>
      client.createCertificate(req, md, (err, res) =>
        resolve(
          err
            ? { ok: false, code: err.code, details: err.details }
            : { ok: true, chain: res?.certChain ?? [] },
        ),
      ),
    );
  } finally {
    client.close();
  }
}

async function csrFor(uri: string): Promise<string> {
  return createCsr(uri, await generateKeyPair());
}

/** A CSR with no SAN at all: Istio's ztunnel may rely on ImpersonatedIdentity alone. */
async function csrWithoutSan(): Promise<string> {
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "O=whatever",
    keys: keys as never,
    signingAlgorithm: P256,
  });
  return csr.toString("pem");
}

t.test("CreateCertificate", async (t) => {
  const dir = await tempDir(t);
  const running = await startCa({ dir, maxTtlSeconds: 7200 });
  t.teardown(() => running.close());

  t.test(
    "signs a pod of the caller's node with its URI SAN and the asked lifetime; the chain verifies",
    async (t) => {
      const before = await counterValue(caMetrics.signed);
      const asked = Date.now();
      const out = await ask(running, { csr: await csrFor(CLIENT), token: NODE1_TOKEN, ttl: 3600 });
      if (!out.ok) return t.fail(`refused: ${out.details}`);
      t.equal(out.chain.length, 2, "leaf and root");
      const leaf = new X509Certificate(out.chain[0] as string);
      t.equal(leaf.subjectAltName, `URI:${CLIENT}`, "exactly the identity as URI SAN");
      t.equal(spiffeIdOf(leaf), CLIENT);
      const lifetime = new Date(leaf.validTo).getTime() - asked;
      t.ok(lifetime > 3595_000 && lifetime <= 3601_000, `lifetime ~1h (${lifetime} ms)`);
      t.ok(new Date(leaf.validFrom).getTime() < asked, "notBefore backdated");
      t.same(
        leaf.keyUsage?.sort(),
        ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
        "EKU serverAuth + clientAuth",
      );
      t.notOk(leaf.ca, "leaf is not a CA");
      t.equal(out.chain[out.chain.length - 1]?.trim(), running.ca.rootPem.trim(), "root last, as istiod");
      t.ok(verifyChain(out.chain, [running.ca.rootPem]).ok, "chain verifies against the root");
      t.equal(await counterValue(caMetrics.signed), before + 1, "counted");
    },
  );

  t.test("lifetime: the default when none is asked, capped at the maximum", async (t) => {
    const a = await ask(running, { csr: await csrFor(CLIENT), token: NODE1_TOKEN, ttl: 0 });
    const b = await ask(running, { csr: await csrFor(CLIENT), token: NODE1_TOKEN, ttl: 10 * 86400 });
    if (!a.ok || !b.ok) return t.fail("refused");
    const life = (pem: string) => (new Date(new X509Certificate(pem).validTo).getTime() - Date.now()) / 1000;
    // startCa: default 24h, max 2h: the default itself is capped.
    t.ok(Math.abs(life(a.chain[0] as string) - 7200) < 5, "default capped at max");
    t.ok(Math.abs(life(b.chain[0] as string) - 7200) < 5, "asked 10 days, got the max");
  });

  t.test("refuses an identity that runs on another node, and counts it", async (t) => {
    const before = await counterValue(caMetrics.refused, { reason: "not_on_node" });
    const out = await ask(running, { csr: await csrFor(SERVER), token: NODE1_TOKEN, ttl: 3600 });
    t.notOk(out.ok);
    if (out.ok) return;
    t.equal(out.code, grpc.status.PERMISSION_DENIED);
    t.match(out.details, SERVER, "names the identity");
    t.match(out.details, "node-1", "names the node");
    t.equal(await counterValue(caMetrics.refused, { reason: "not_on_node" }), before + 1);
    // The same identity from its own node is fine.
    t.ok((await ask(running, { csr: await csrFor(SERVER), token: NODE2_TOKEN })).ok);
  });

  t.test("no token or a wrong token: UNAUTHENTICATED, counted", async (t) => {
    const before = await counterValue(caMetrics.refused, { reason: "unauthenticated" });
    const none = await ask(running, { csr: await csrFor(CLIENT) });
    const wrong = await ask(running, { csr: await csrFor(CLIENT), token: `${NODE1_TOKEN}x` });
    for (const out of [none, wrong]) {
      t.notOk(out.ok);
      if (!out.ok) t.equal(out.code, grpc.status.UNAUTHENTICATED);
    }
    t.equal(await counterValue(caMetrics.refused, { reason: "unauthenticated" }), before + 2);
  });

  t.test("ImpersonatedIdentity metadata decides the identity, as Istio's ztunnel sends it", async (t) => {
    const out = await ask(running, { csr: await csrWithoutSan(), token: NODE1_TOKEN, impersonate: CLIENT });
    if (!out.ok) return t.fail(`refused: ${out.details}`);
    t.equal(
      new X509Certificate(out.chain[0] as string).subjectAltName,
      `URI:${CLIENT}`,
      "the CSR's subject is ignored",
    );
    const other = await ask(running, { csr: await csrWithoutSan(), token: NODE1_TOKEN, impersonate: SERVER });
    t.notOk(other.ok);
    if (!other.ok) t.equal(other.code, grpc.status.PERMISSION_DENIED, "still only the caller's node's pods");
    const mismatch = await ask(running, {
      csr: await csrFor(SERVER),
      token: NODE1_TOKEN,
      impersonate: CLIENT,
    });
    t.notOk(mismatch.ok, "a CSR asking for another identity than the impersonated one");
    if (!mismatch.ok) t.equal(mismatch.code, grpc.status.PERMISSION_DENIED);
  });

  t.test("pods moving between nodes change the answer", async (t) => {
    running.pods.set("node-1", [
      ...(running.pods.get("node-1") ?? []),
      { namespace: "demo", serviceAccount: "server" },
    ]);
    t.teardown(() => running.pods.set("node-1", [{ namespace: "demo", serviceAccount: "client" }]));
    t.ok((await ask(running, { csr: await csrFor(SERVER), token: NODE1_TOKEN })).ok);
  });

  t.test("bad input: invalid argument with the field named", async (t) => {
    const garbage = await ask(running, {
      csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
      token: NODE1_TOKEN,
    });
    t.notOk(garbage.ok);
    if (!garbage.ok) {
      t.equal(garbage.code, grpc.status.INVALID_ARGUMENT);
      t.match(garbage.details, "field csr");
    }
    const noId = await ask(running, { csr: await csrWithoutSan(), token: NODE1_TOKEN });
    t.notOk(noId.ok);
    if (!noId.ok) t.equal(noId.code, grpc.status.INVALID_ARGUMENT);
    const notSpiffe = await ask(running, {
      csr: await csrWithoutSan(),
      token: NODE1_TOKEN,
      impersonate: "spiffe://cluster.local/ns/demo/sa/client/extra",
    });
    t.notOk(notSpiffe.ok);
    if (!notSpiffe.ok) t.equal(notSpiffe.code, grpc.status.INVALID_ARGUMENT);
    const otherTd = await ask(running, {
      csr: await csrFor("spiffe://evil.example/ns/demo/sa/client"),
      token: NODE1_TOKEN,
    });
    t.notOk(otherTd.ok);
    if (!otherTd.ok) {
      t.equal(otherTd.code, grpc.status.PERMISSION_DENIED);
      t.match(otherTd.details, "trust domain");
    }
    // A CSR whose signature does not match its key: no proof of possession.
    const good = await csrFor(CLIENT);
    const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 5] = (der[der.length - 5] as number) ^ 0xff;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----`;
    const forged = await ask(running, { csr: tampered, token: NODE1_TOKEN });
    t.notOk(forged.ok);
    if (!forged.ok) t.equal(forged.code, grpc.status.INVALID_ARGUMENT);
  });
});

t.test("a workload's own token (a waypoint's) gets its own identity and nothing else", async (t) => {
  // What the cluster's TokenReview authenticator answers for a pod-bound token
  // of a service account that is not a node agent's (tested against a real API
  // server in test/k8s/kube-control): its node, and itself only.
  const selfAuthn: CallerAuthenticator = {
    async authenticate(md) {
      return bearerToken(md) === "waypoint-token"
        ? {
            node: "node-1",
            via: "tokenreview:demo/client",
            self: { namespace: "demo", serviceAccount: "client" },
          }
        : null;
    },
  };
  const running = await startCa({ dir: await tempDir(t), authenticator: selfAuthn });
  t.teardown(() => running.close());
  t.ok((await ask(running, { csr: await csrFor(CLIENT), token: "waypoint-token" })).ok, "its own identity");
  running.pods.set("node-1", [
    { namespace: "demo", serviceAccount: "client" },
    { namespace: "demo", serviceAccount: "server" },
  ]);
  const before = await counterValue(caMetrics.refused, { reason: "identity_mismatch" });
  const other = await ask(running, { csr: await csrFor(SERVER), token: "waypoint-token" });
  t.notOk(other.ok, "another identity on the same node is refused");
  if (!other.ok) {
    t.equal(other.code, grpc.status.PERMISSION_DENIED);
    t.match(other.details, "only ask for its own identity");
  }
  t.equal(await counterValue(caMetrics.refused, { reason: "identity_mismatch" }), before + 1, "counted");
});

t.test(
  "over TLS (15012): CaClient trusting the root gets a checked certificate; trusting another root it cannot",
  async (t) => {
    const running = await startCa({ dir: await tempDir(t), tls: true });
    t.teardown(() => running.close());
    const client = new CaClient({
      address: running.address,
      token: NODE1_TOKEN,
      tls: { rootsPem: [running.ca.rootPem] },
      ttlSeconds: 600,
    });
    t.teardown(() => client.close());
    const issued = await client.fetch({ trustDomain: TD, namespace: "demo", serviceAccount: "client" });
    t.equal(issued.identity, CLIENT);
    t.equal(issued.certChainPem.length, 1, "leaf (no intermediates)");
    t.equal(issued.rootsPem[0]?.trim(), running.ca.rootPem.trim());
    t.ok(issued.notAfter.getTime() - Date.now() <= 600_000);
    t.ok(verifyChain(issued.certChainPem, issued.rootsPem).ok);

    const other = await startCa({ dir: await tempDir(t) });
    t.teardown(() => other.close());
    const wrongTrust = new CaClient({
      address: running.address,
      token: NODE1_TOKEN,
      tls: { rootsPem: [other.ca.rootPem] },
      timeoutMs: 3000,
    });
    t.teardown(() => wrongTrust.close());
    await t.rejects(
      wrongTrust.fetch(CLIENT),
      "the CA's serving certificate does not chain to a root it trusts",
    );

    const refused = new CaClient({
      address: running.address,
      token: NODE1_TOKEN,
      tls: { rootsPem: [running.ca.rootPem] },
    });
    t.teardown(() => refused.close());
    await t.rejects(refused.fetch(SERVER), { code: "CA_REFUSED" }, "refusal surfaces as CA_REFUSED");
  },
);

t.test(
  "CaClient checks the answer: a CA that signs another identity or another key is not believed",
  async (t) => {
    const running = await startCa({ dir: await tempDir(t) });
    t.teardown(() => running.close());
    const ca = running.ca;
    const answers: Array<(csr: string) => Promise<string[]>> = [
      // signs, but for another identity
      async (csr) => (await ca.signWorkload(csr, SERVER, 600)).certChain,
      // signs the requested identity, but for a key of its own
      async () => (await ca.signWorkload(await csrFor(CLIENT), CLIENT, 600)).certChain,
      // an empty chain
      async () => [],
      // a leaf without its root
      async (csr) => (await ca.signWorkload(csr, CLIENT, 600)).certChain.slice(0, 1),
    ];
    const reasons = [
      /is for spiffe:\/\/cluster.local\/ns\/demo\/sa\/server/,
      /not for our key/,
      /empty certificate chain/,
      /no root/,
    ];
    let which = 0;
    const server = new grpc.Server();
    server.addService(grpcServiceDefinition(IstioCertificateService), {
      createCertificate: (
        call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        (answers[which] as (csr: string) => Promise<string[]>)(call.request.csr).then(
          (certChain) => cb(null, create(IstioCertificateResponseSchema, { certChain })),
          (e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }),
        );
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    t.teardown(() => server.forceShutdown());
    const client = new CaClient({ address: `127.0.0.1:${port}`, token: NODE1_TOKEN });
    t.teardown(() => client.close());
    for (which = 0; which < answers.length; which++) {
      await t.rejects(client.fetch(CLIENT), { code: "CA_REFUSED", message: reasons[which] as RegExp });
    }
  },
);
