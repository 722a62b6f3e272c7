// L4 authorization table: istio.security.Authorization semantics, including
// scopes, DENY before ALLOW, default allow/deny, HTTP-only ALLOW rules
// matching nothing, negative fields, CIDRs, dry run, and the explanation.
import fc from "fast-check";
import t from "tap";
import type { AuthzMatch, AuthzPolicy, AuthzRule } from "../../core/model/types.js";
import {
  type AuthzDecision,
  authorize,
  cidrContains,
  ipBytes,
  type L4Connection,
} from "../../ztunnel/proxy/authz.js";
import { policy, workload } from "./fixtures-ztunnel.js";

const dst = workload({
  name: "server",
  namespace: "b",
  ip: "10.0.0.20",
  node: "n2",
  authorizationPolicies: ["b/selected", "b/selected-deny"],
});
const fromA: L4Connection = {
  srcIdentity: "spiffe://cluster.local/ns/a/sa/client",
  srcIp: "10.0.0.10",
  dstIp: "10.0.0.20",
  dstPort: 8080,
};
const plaintext: L4Connection = { srcIp: "192.168.1.5", dstIp: "10.0.0.20", dstPort: 8080 };

const rule = (...matches: AuthzMatch[]): AuthzRule => ({ clauses: [{ matches }] });
const allow = (name: string, rules: AuthzRule[], over: Partial<AuthzPolicy> = {}) =>
  policy({ name, namespace: "b", action: "allow", rules, ...over });
const deny = (name: string, rules: AuthzRule[], over: Partial<AuthzPolicy> = {}) =>
  policy({ name, namespace: "b", action: "deny", rules, ...over });

interface Case {
  name: string;
  conn?: L4Connection;
  policies: AuthzPolicy[];
  want: Partial<AuthzDecision>;
}

const cases: Case[] = [
  { name: "no policies: allow", policies: [], want: { allow: true, reason: "no_allow_policies" } },
  {
    name: "DENY matching namespace denies, naming policy and rule",
    policies: [
      deny("deny-a", [rule({ namespaces: [{ exact: "x" }] }), rule({ namespaces: [{ exact: "a" }] })]),
    ],
    want: { allow: false, reason: "deny_policy", policy: "b/deny-a", rule: 1 },
  },
  {
    name: "DENY not matching: allowed by default",
    policies: [deny("deny-x", [rule({ namespaces: [{ exact: "x" }] })])],
    want: { allow: true, reason: "no_allow_policies" },
  },
  {
    name: "DENY wins over a matching ALLOW",
    policies: [
      allow("allow-a", [rule({ namespaces: [{ exact: "a" }] })]),
      deny("deny-port", [rule({ destinationPorts: [8080] })]),
    ],
    want: { allow: false, reason: "deny_policy", policy: "b/deny-port" },
  },
  {
    name: "ALLOW matching principal (no scheme, as Istio writes it)",
    policies: [allow("allow-p", [rule({ principals: [{ exact: "cluster.local/ns/a/sa/client" }] })])],
    want: { allow: true, reason: "allow_policy", policy: "b/allow-p", rule: 0 },
  },
  {
    name: "ALLOW matching the full spiffe URI too",
    policies: [
      allow("allow-p", [rule({ principals: [{ exact: "spiffe://cluster.local/ns/a/sa/client" }] })]),
    ],
    want: { allow: true, reason: "allow_policy" },
  },
  {
    name: "ALLOW present, none matches: deny",
    policies: [allow("allow-z", [rule({ namespaces: [{ exact: "z" }] })])],
    want: { allow: false, reason: "no_allow_match" },
  },
  {
    name: "ALLOW with no rules allows nothing",
    policies: [allow("allow-nothing", [])],
    want: { allow: false, reason: "no_allow_match" },
  },
  {
    name: "ALLOW with an empty rule allows everything",
    policies: [allow("allow-all", [{ clauses: [] }])],
    want: { allow: true, reason: "allow_policy", rule: 0 },
  },
  {
    name: "DENY with no rules denies nothing",
    policies: [deny("deny-nothing", [])],
    want: { allow: true, reason: "no_allow_policies" },
  },
  {
    name: "ALLOW rule carrying HTTP-only fields (a clause with no matches) matches nothing at L4",
    policies: [
      allow("allow-get", [{ clauses: [{ matches: [{ namespaces: [{ exact: "a" }] }] }, { matches: [] }] }]),
    ],
    want: { allow: false, reason: "no_allow_match" },
  },
  {
    name: "clauses AND: all must match",
    policies: [
      allow("and", [
        {
          clauses: [
            { matches: [{ namespaces: [{ exact: "a" }] }] },
            { matches: [{ destinationPorts: [9090] }] },
          ],
        },
      ]),
    ],
    want: { allow: false, reason: "no_allow_match" },
  },
  {
    name: "matches OR within a clause",
    policies: [allow("or", [rule({ namespaces: [{ exact: "z" }] }, { destinationPorts: [8080] })])],
    want: { allow: true, reason: "allow_policy" },
  },
  {
    name: "fields AND within a match",
    policies: [allow("fields", [rule({ namespaces: [{ exact: "a" }], destinationPorts: [9090] })])],
    want: { allow: false },
  },
  {
    name: "notNamespaces excludes",
    policies: [allow("not-a", [rule({ notNamespaces: [{ exact: "a" }] })])],
    want: { allow: false, reason: "no_allow_match" },
  },
  {
    name: "prefix and suffix string matches",
    policies: [
      allow("pre", [
        rule({ principals: [{ prefix: "cluster.local/ns/a/" }], namespaces: [{ suffix: "a" }] }),
      ]),
    ],
    want: { allow: true },
  },
  {
    name: "serviceAccounts match namespace and name",
    policies: [allow("sa", [rule({ serviceAccounts: [{ namespace: "a", serviceAccount: "client" }] })])],
    want: { allow: true },
  },
  {
    name: "notServiceAccounts",
    policies: [
      deny("not-sa", [rule({ notServiceAccounts: [{ namespace: "a", serviceAccount: "client" }] })]),
    ],
    want: { allow: true },
  },
  {
    name: "source CIDR",
    policies: [allow("cidr", [rule({ sourceIps: [{ address: "10.0.0.0", length: 24 }] })])],
    want: { allow: true },
  },
  {
    name: "notSourceIps",
    policies: [deny("not-cidr", [rule({ notSourceIps: [{ address: "10.0.0.0", length: 8 }] })])],
    want: { allow: true },
  },
  {
    name: "destination IP and notDestinationPorts",
    policies: [
      deny("d", [
        rule({ destinationIps: [{ address: "10.0.0.20", length: 32 }], notDestinationPorts: [8080] }),
      ]),
    ],
    want: { allow: true },
  },
  {
    name: "plaintext: principals cannot match",
    conn: plaintext,
    policies: [allow("p", [rule({ principals: [{ presence: true }] })])],
    want: { allow: false, reason: "no_allow_match" },
  },
  {
    name: "plaintext: Istio's converted STRICT (DENY notPrincipals presence) denies",
    conn: plaintext,
    policies: [deny("istio_converted_static_strict", [rule({ notPrincipals: [{ presence: true }] })])],
    want: { allow: false, reason: "deny_policy" },
  },
  {
    name: "mTLS: the converted STRICT policy lets identities through",
    policies: [deny("istio_converted_static_strict", [rule({ notPrincipals: [{ presence: true }] })])],
    want: { allow: true },
  },
  {
    name: "scope: a namespace policy of another namespace does not apply",
    policies: [policy({ name: "deny-all", namespace: "other", action: "deny", rules: [{ clauses: [] }] })],
    want: { allow: true, reason: "no_allow_policies" },
  },
  {
    name: "scope: a global policy applies everywhere",
    policies: [
      policy({
        name: "deny-all",
        namespace: "istio-system",
        scope: "global",
        action: "deny",
        rules: [{ clauses: [] }],
      }),
    ],
    want: { allow: false, policy: "istio-system/deny-all" },
  },
  {
    name: "scope: a workload policy applies only when the workload lists it",
    policies: [
      policy({
        name: "not-selected",
        namespace: "b",
        scope: "workload",
        action: "deny",
        rules: [{ clauses: [] }],
      }),
      policy({
        name: "selected",
        namespace: "b",
        scope: "workload",
        action: "allow",
        rules: [rule({ namespaces: [{ exact: "a" }] })],
      }),
    ],
    want: { allow: true, reason: "allow_policy", policy: "b/selected" },
  },
  {
    name: "scope: an ALLOW selecting another workload does not make this one default-deny",
    policies: [policy({ name: "elsewhere", namespace: "b", scope: "workload", action: "allow", rules: [] })],
    want: { allow: true, reason: "no_allow_policies" },
  },
  {
    name: "dry run: never enforced, but reported",
    policies: [deny("dry", [{ clauses: [] }], { dryRun: true })],
    want: {
      allow: true,
      reason: "no_allow_policies",
      dryRun: [{ policy: "b/dry", rule: 0, action: "deny" }],
    },
  },
  {
    name: "IPv6 CIDR against an IPv4 source does not match",
    policies: [allow("v6", [rule({ sourceIps: [{ address: "fd00::", length: 8 }] })])],
    want: { allow: false },
  },
];

for (const c of cases) {
  t.test(c.name, async (tt) => {
    const got = authorize(c.conn ?? fromA, dst, c.policies);
    tt.match(got, c.want);
    if (c.want.policy === undefined && !("policy" in c.want) && c.want.reason?.startsWith("no_"))
      tt.equal(got.policy, undefined);
  });
}

t.test("CIDR arithmetic", async (tt) => {
  tt.ok(cidrContains({ address: "10.1.2.0", length: 23 }, "10.1.3.255"));
  tt.notOk(cidrContains({ address: "10.1.2.0", length: 24 }, "10.1.3.0"));
  tt.ok(cidrContains({ address: "0.0.0.0", length: 0 }, "1.2.3.4"));
  tt.ok(cidrContains({ address: "fd00::", length: 8 }, "fdab::1"));
  tt.notOk(cidrContains({ address: "fd00::", length: 16 }, "fd01::1"));
  tt.ok(cidrContains({ address: "10.0.0.1", length: 32 }, "::ffff:10.0.0.1"), "IPv4-mapped peers");
  tt.notOk(cidrContains({ address: "nonsense", length: 8 }, "10.0.0.1"));
  tt.same(ipBytes("::1"), [...new Array(15).fill(0), 1]);
  tt.equal(ipBytes("1::2::3"), undefined);
  tt.equal(ipBytes("256.0.0.1"), undefined);
});

t.test("property: a matching DENY always denies, whatever ALLOWs exist", async () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom("a", "b", "z"), { maxLength: 4 }),
      fc.boolean(),
      (allowNs, withAllow) => {
        const ps = [
          ...(withAllow ? [allow("al", [rule({ namespaces: allowNs.map((exact) => ({ exact })) })])] : []),
          deny("dn", [rule({ namespaces: [{ exact: "a" }] })]),
        ];
        const d = authorize(fromA, dst, ps);
        return !d.allow && d.policy === "b/dn";
      },
    ),
  );
});
