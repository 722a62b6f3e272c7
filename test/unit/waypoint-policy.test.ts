import { exportJWK, generateKeyPair, SignJWT } from "jose";
import t from "tap";
import {
  closeClientAgent,
  cluster,
  cname,
  httpBackend,
  request,
  route,
  service,
  startWaypoint,
} from "./waypoint-harness.js";

t.teardown(closeClientAgent);

t.test("mirror receives a copy; a dead or slow mirror never affects the main path", async (t) => {
  const main = await httpBackend(t, "main");
  const mirror = await httpBackend(t, "mirror");
  const stuck = await httpBackend(t, "stuck", () => {
    /* never answers */
  });
  const svc = service({
    clusters: [
      cluster("main", [main.port]),
      cluster("mirror", [mirror.port]),
      cluster("dead", [1]),
      cluster("stuck", [stuck.port]),
    ],
    routes: [
      route("live", {
        match: { path: { type: "PathPrefix", value: "/live" } },
        filters: [{ type: "RequestMirror", cluster: cname("mirror"), percent: 100 }],
        backends: [{ cluster: cname("main"), weight: 1 }],
      }),
      route("dead", {
        match: { path: { type: "PathPrefix", value: "/dead" } },
        filters: [
          { type: "RequestMirror", cluster: cname("dead"), percent: 100 },
          { type: "RequestMirror", cluster: cname("stuck"), percent: 100 },
        ],
        backends: [{ cluster: cname("main"), weight: 1 }],
        timeouts: { requestMs: 2000 },
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  const copy = mirror.next();
  const r = await request(port, { path: "/live/x", method: "POST", body: "hello" });
  t.equal(r.status, 200);
  t.equal(r.json().backend, "main");
  const c = await copy;
  t.equal(c.body, "hello", "mirror got the body");
  t.equal(c.url, "/live/x");
  t.equal(c.headers.host, "web-shadow");
  for (let i = 0; i < 5; i++) {
    const t0 = Date.now();
    const d = await request(port, { path: "/dead", method: "POST", body: "x".repeat(1000) });
    t.equal(d.status, 200, "main path unaffected by dead and stuck mirrors");
    t.ok(Date.now() - t0 < 1000);
  }
  t.equal(main.seen.length, 6);
});

t.test("L7 authorization: denied path → 403, allowed → 200; DENY wins", async (t) => {
  const a = await httpBackend(t, "a");
  const svc = service({
    clusters: [cluster("a", [a.port])],
    routes: [route("r", { backends: [{ cluster: cname("a"), weight: 1 }] })],
    authz: [
      {
        name: "default/allow-read",
        action: "ALLOW",
        rules: [{ from: [], to: [{ methods: ["GET"], paths: ["/public/*", "/health"] }], when: [] }],
      },
      {
        name: "default/deny-secret",
        action: "DENY",
        rules: [{ from: [], to: [{ paths: ["/public/secret"] }], when: [] }],
      },
      {
        name: "default/allow-admin-header",
        action: "ALLOW",
        rules: [
          {
            from: [],
            to: [{ paths: ["/admin*"] }],
            when: [{ key: "request.headers[x-role]", values: ["admin"] }],
          },
        ],
      },
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  t.equal((await request(port, { path: "/public/page" })).status, 200);
  t.equal((await request(port, { path: "/health" })).status, 200);
  const denied = await request(port, { path: "/private" });
  t.equal(denied.status, 403);
  t.match(denied.body, /RBAC: access denied/);
  t.equal((await request(port, { path: "/public/page", method: "POST" })).status, 403);
  t.equal((await request(port, { path: "/public/secret" })).status, 403, "DENY overrides ALLOW");
  t.equal((await request(port, { path: "/admin/x" })).status, 403);
  t.equal((await request(port, { path: "/admin/x", headers: { "x-role": "admin" } })).status, 200);
  t.equal(a.seen.length, 3, "denied requests never reach the backend");
});

t.test("RequestAuthentication + authz on JWT claims: missing → 401, bad → 401, valid → 200", async (t) => {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
  const other = await generateKeyPair("ES256");
  const sign = (claims: Record<string, unknown>, key = privateKey) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(key);
  const a = await httpBackend(t, "a");
  const svc = service({
    clusters: [cluster("a", [a.port])],
    routes: [route("r", { backends: [{ cluster: cname("a"), weight: 1 }] })],
    jwtRules: [
      {
        issuer: "https://issuer.test",
        audiences: ["web"],
        jwks: JSON.stringify({ keys: [jwk] }),
        outputClaimToHeaders: [{ header: "x-jwt-sub", claim: "sub" }],
      },
    ],
    authz: [
      {
        name: "default/require-jwt",
        action: "ALLOW",
        rules: [
          {
            from: [{ requestPrincipals: ["https://issuer.test/*"] }],
            to: [],
            when: [{ key: "request.auth.claims[groups]", values: ["dev"] }],
          },
        ],
      },
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  const missing = await request(port);
  t.equal(missing.status, 401, "missing JWT → 401");
  t.match(String(missing.headers["www-authenticate"]), /^Bearer/);
  const good = await sign({ iss: "https://issuer.test", aud: "web", sub: "alice", groups: ["dev", "ops"] });
  const ok = await request(port, { headers: { authorization: `Bearer ${good}` } });
  t.equal(ok.status, 200);
  t.equal(a.seen[0]!.headers["x-jwt-sub"], "alice");
  t.notOk(a.seen[0]!.headers.authorization, "token not forwarded by default");
  const forged = await sign(
    { iss: "https://issuer.test", aud: "web", sub: "mallory", groups: ["dev"] },
    other.privateKey,
  );
  t.equal(
    (await request(port, { headers: { authorization: `Bearer ${forged}` } })).status,
    401,
    "bad signature → 401",
  );
  const wrongAud = await sign({ iss: "https://issuer.test", aud: "other", sub: "bob", groups: ["dev"] });
  t.equal(
    (await request(port, { headers: { authorization: `Bearer ${wrongAud}` } })).status,
    401,
    "wrong audience → 401",
  );
  const noGroup = await sign({ iss: "https://issuer.test", aud: "web", sub: "carol", groups: ["ops"] });
  t.equal(
    (await request(port, { headers: { authorization: `Bearer ${noGroup}` } })).status,
    403,
    "valid token, claim not allowed → 403",
  );
  t.equal(a.seen.length, 1);
});

t.test("CORS preflight answered by the waypoint; allowed origin gets headers", async (t) => {
  const a = await httpBackend(t, "a");
  const svc = service({
    clusters: [cluster("a", [a.port])],
    routes: [
      route("r", {
        filters: [
          {
            type: "CORS",
            cors: {
              allowOrigins: ["https://*.example.com"],
              allowMethods: ["GET", "PUT"],
              allowHeaders: ["x-token"],
              exposeHeaders: ["x-backend"],
              maxAgeSeconds: 600,
            },
          },
        ],
        backends: [{ cluster: cname("a"), weight: 1 }],
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  const pre = await request(port, {
    method: "OPTIONS",
    headers: { origin: "https://app.example.com", "access-control-request-method": "PUT" },
  });
  t.equal(pre.status, 204);
  t.equal(pre.headers["access-control-allow-origin"], "https://app.example.com");
  t.equal(pre.headers["access-control-allow-methods"], "GET, PUT");
  t.equal(pre.headers["access-control-max-age"], "600");
  t.equal(a.seen.length, 0, "preflight not forwarded");
  const real = await request(port, { headers: { origin: "https://app.example.com" } });
  t.equal(real.headers["access-control-allow-origin"], "https://app.example.com");
  t.equal(real.headers["access-control-expose-headers"], "x-backend");
  const other = await request(port, { headers: { origin: "https://evil.test" } });
  t.notOk(other.headers["access-control-allow-origin"]);
});

t.test("JWKS from a URL is fetched once and cached; JWKS from a file works", async (t) => {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" }] });
  let fetches = 0;
  const http = await import("node:http");
  const jwksServer = http.createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(jwks);
  });
  await new Promise<void>((r) => jwksServer.listen(0, "127.0.0.1", r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        jwksServer.close(() => r());
        jwksServer.closeAllConnections();
      }),
  );
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(`${tmpdir()}/ambit-jwks-`);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/jwks.json`, jwks);
  const a = await httpBackend(t, "a");
  const port = (jwksServer.address() as import("node:net").AddressInfo).port;
  const svc = service({
    clusters: [cluster("a", [a.port])],
    routes: [route("r", { backends: [{ cluster: cname("a"), weight: 1 }] })],
    jwtRules: [
      { issuer: "https://url.test", audiences: [], jwksUri: `http://127.0.0.1:${port}/jwks.json` },
      { issuer: "https://file.test", audiences: [], jwksUri: `file://${dir}/jwks.json` },
    ],
    authz: [
      {
        name: "default/jwt",
        action: "ALLOW",
        rules: [{ from: [{ requestPrincipals: ["*"] }], to: [], when: [] }],
      },
    ],
  });
  const { port: wport } = await startWaypoint(t, [svc]);
  const token = (iss: string) =>
    new SignJWT({ iss, sub: "u" })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setExpirationTime("5m")
      .sign(privateKey);
  for (let i = 0; i < 5; i++)
    t.equal(
      (await request(wport, { headers: { authorization: `Bearer ${await token("https://url.test")}` } }))
        .status,
      200,
    );
  t.equal(fetches, 1, "JWKS fetched once");
  t.equal(
    (await request(wport, { headers: { authorization: `Bearer ${await token("https://file.test")}` } }))
      .status,
    200,
  );
  t.equal(
    (await request(wport, { headers: { authorization: `Bearer ${await token("https://other.test")}` } }))
      .status,
    401,
    "unknown issuer",
  );
});
