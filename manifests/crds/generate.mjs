// Writes manifests/crds/ambit.dev_*.yaml: the ambit.dev/v1alpha1 CRDs with
// their OpenAPI v3 schemas. The shapes are Istio's (security.istio.io and
// networking.istio.io), so moving a policy from Istio is a change of
// apiVersion; controller/provider/objects.ts types the same fields.
// Run: node manifests/crds/generate.mjs  (the output is committed).
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const GROUP = "ambit.dev";
const VERSION = "v1alpha1";

// ---------- building blocks ----------

const str = (description, extra = {}) => ({ type: "string", description, ...extra });
const strList = (description, maxItems = 256) => ({
  type: "array",
  description,
  maxItems,
  items: { type: "string", minLength: 1 },
});
const int = (description, extra = {}) => ({ type: "integer", format: "int32", description, ...extra });
// No additionalProperties: false (the API server forbids it next to properties):
// structural schemas drop unknown fields, and kubectl's strict field
// validation (the default) turns them into errors naming the field.
const obj = (description, properties, extra = {}) => ({ type: "object", description, properties, ...extra });
// Go/protobuf durations as Istio accepts them: "10s", "1.5s", "100ms", "1h30m".
const DURATION = "^([0-9]+(\\.[0-9]+)?(h|m|s|ms|us|ns))+$";
const duration = (description) => str(description, { pattern: DURATION, maxLength: 32 });

const selector = obj(
  "Workloads (pods) this applies to, by their labels; absent means every workload in the namespace (or the mesh, in the root namespace).",
  {
    matchLabels: {
      type: "object",
      description: "Labels a pod must all carry.",
      additionalProperties: { type: "string", maxLength: 63 },
      maxProperties: 4096,
    },
  },
);

const targetRef = obj(
  "A resource this applies to (a Gateway of class ambit-waypoint, a Service, or a ServiceEntry-like target).",
  {
    group: str("API group of the target; empty for core.", { maxLength: 253 }),
    kind: str("Kind of the target.", { minLength: 1, maxLength: 63 }),
    name: str("Name of the target.", { minLength: 1, maxLength: 253 }),
    namespace: str("Namespace of the target; only the policy's own namespace is supported.", {
      maxLength: 63,
    }),
  },
  {
    required: ["kind", "name"],
    "x-kubernetes-validations": [
      {
        // The group is optional (empty means core): keep the rule total over an absent field.
        rule: "(has(self.group) ? self.group : '') in ['', 'core'] ? self.kind == 'Service' : (self.group == 'gateway.networking.k8s.io' && self.kind == 'Gateway') || (self.group == 'networking.istio.io' && self.kind == 'ServiceEntry')",
        message: "targetRef must be a Service or a gateway.networking.k8s.io Gateway",
      },
    ],
  },
);

const targetRefs = {
  type: "array",
  description: "Resources this applies to (at most 16).",
  maxItems: 16,
  items: targetRef,
};

const onlyOneTargeting = {
  rule: "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
  message: "only one of selector, targetRef or targetRefs may be set",
};

const condition = obj(
  "A condition of the object (metav1.Condition).",
  {
    type: str("Type of condition, e.g. Accepted.", { minLength: 1, maxLength: 316 }),
    status: str("True, False or Unknown.", { enum: ["True", "False", "Unknown"] }),
    reason: str("Machine-readable reason, CamelCase.", { maxLength: 1024 }),
    message: str("Human-readable message.", { maxLength: 32768 }),
    observedGeneration: {
      type: "integer",
      format: "int64",
      minimum: 0,
      description: "The .metadata.generation the condition was set for.",
    },
    lastTransitionTime: str("When the status last changed.", { format: "date-time" }),
  },
  { required: ["type", "status"] },
);

const status = obj("Set by the ambit controller.", {
  observedGeneration: {
    type: "integer",
    format: "int64",
    minimum: 0,
    description: "The .metadata.generation this status describes.",
  },
  conditions: {
    type: "array",
    description: "Accepted: the controller translated the object (False with the reason when not).",
    maxItems: 16,
    items: condition,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
  },
});

const percentage = obj("Share of requests affected.", {
  value: {
    type: "number",
    format: "double",
    minimum: 0,
    maximum: 100,
    description: "Percent, 0-100 (fractions allowed).",
  },
});

// ---------- kinds ----------

const source = obj("Who the request comes from. Fields are ANDed; the values of one field are ORed.", {
  principals: strList(
    "Peer identities (SPIFFE ids without the spiffe:// prefix, e.g. cluster.local/ns/default/sa/client); prefix, suffix or * wildcards.",
  ),
  notPrincipals: strList("Peer identities that must not match."),
  requestPrincipals: strList("JWT principals `<iss>/<sub>` (needs a waypoint and RequestAuthentication)."),
  notRequestPrincipals: strList("JWT principals that must not match."),
  namespaces: strList("Namespaces of the peer identity."),
  notNamespaces: strList("Namespaces that must not match."),
  serviceAccounts: strList("Service accounts `<ns>/<name>` of the peer identity."),
  notServiceAccounts: strList("Service accounts that must not match."),
  ipBlocks: strList("Source IPs or CIDRs (the immediate peer)."),
  notIpBlocks: strList("Source IPs or CIDRs that must not match."),
  remoteIpBlocks: strList("Original client IPs or CIDRs (X-Forwarded-For at a waypoint)."),
  notRemoteIpBlocks: strList("Original client IPs or CIDRs that must not match."),
});
const portList = (description) => ({
  type: "array",
  description,
  maxItems: 256,
  items: {
    "x-kubernetes-int-or-string": true,
    description: "A port number (1-65535), as a string or a number.",
  },
});
const operation = obj("What the request asks for. methods, paths and hosts need a waypoint (L7).", {
  hosts: strList("Host / :authority values."),
  notHosts: strList("Hosts that must not match."),
  ports: portList("Destination ports."),
  notPorts: portList("Destination ports that must not match."),
  methods: strList("HTTP methods (gRPC: POST)."),
  notMethods: strList("Methods that must not match."),
  paths: strList("HTTP paths (gRPC: /package.Service/Method); prefix, suffix or * wildcards."),
  notPaths: strList("Paths that must not match."),
});
const when = obj(
  "An extra condition on a request attribute (e.g. request.headers[x-id], source.ip, request.auth.claims[iss]).",
  {
    key: str("Attribute name.", { minLength: 1 }),
    values: strList("Values of which one must match."),
    notValues: strList("Values that must not match."),
  },
  { required: ["key"] },
);

const authorizationPolicySpec = obj(
  "Istio's AuthorizationPolicy: ALLOW/DENY/AUDIT rules on L4 (ztunnel) and L7 (waypoint) attributes.",
  {
    selector,
    targetRef,
    targetRefs,
    action: str("ALLOW (default), DENY, AUDIT or CUSTOM.", { enum: ["ALLOW", "DENY", "AUDIT", "CUSTOM"] }),
    provider: obj(
      "The external authorizer of a CUSTOM action.",
      { name: str("Provider name.", { minLength: 1 }) },
      { required: ["name"] },
    ),
    rules: {
      type: "array",
      description:
        "A request matches when any rule matches; absent rules: ALLOW matches nothing, DENY matches nothing, an empty rule ({}) matches everything.",
      maxItems: 512,
      items: obj("One rule: every present part must match.", {
        from: {
          type: "array",
          maxItems: 512,
          description: "Sources; any may match.",
          items: obj("A source.", { source }),
        },
        to: {
          type: "array",
          maxItems: 512,
          description: "Operations; any may match.",
          items: obj("An operation.", { operation }),
        },
        when: { type: "array", maxItems: 512, description: "Conditions; all must match.", items: when },
      }),
    },
  },
  {
    "x-kubernetes-validations": [
      onlyOneTargeting,
      {
        rule: "(has(self.action) && self.action == 'CUSTOM') == has(self.provider)",
        message: "provider is required with action CUSTOM and only allowed with it",
      },
    ],
  },
);

const MTLS_MODES = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"];
const mtls = obj("Mutual TLS mode for inbound connections.", {
  mode: str("UNSET (inherit), DISABLE, PERMISSIVE or STRICT.", { enum: MTLS_MODES }),
});
const peerAuthenticationSpec = obj(
  "Istio's PeerAuthentication: whether workloads accept plaintext.",
  {
    selector,
    mtls,
    portLevelMtls: {
      type: "object",
      description: "Per-port modes, keyed by the workload's port number; needs a selector.",
      additionalProperties: mtls,
      maxProperties: 64,
      "x-kubernetes-validations": [
        {
          rule: "self.all(k, k.matches('^[0-9]+$') && int(k) >= 1 && int(k) <= 65535)",
          message: "keys must be port numbers 1-65535",
        },
      ],
    },
  },
  {
    "x-kubernetes-validations": [
      {
        rule: "!has(self.portLevelMtls) || has(self.selector)",
        message: "portLevelMtls requires a selector",
      },
    ],
  },
);

const jwtRule = obj(
  "One accepted issuer.",
  {
    issuer: str("The iss claim.", { minLength: 1, maxLength: 2048 }),
    audiences: strList("Accepted aud values; absent: the service's host names."),
    jwksUri: str("Where the issuer's keys are fetched.", { maxLength: 2048, pattern: "^https?://" }),
    jwks: str("The issuer's keys inline (a JWKS JSON document).", { maxLength: 65536 }),
    fromHeaders: {
      type: "array",
      maxItems: 16,
      description: "Headers the token is read from (default: Authorization: Bearer).",
      items: obj(
        "A header.",
        { name: str("Header name.", { minLength: 1 }), prefix: str("Prefix to strip, e.g. 'Bearer '.") },
        { required: ["name"] },
      ),
    },
    fromParams: strList("Query parameters the token is read from.", 16),
    fromCookies: strList("Cookies the token is read from.", 16),
    outputPayloadToHeader: str("Header to put the verified payload into (base64url)."),
    forwardOriginalToken: { type: "boolean", description: "Keep the token in the forwarded request." },
    outputClaimToHeaders: {
      type: "array",
      maxItems: 64,
      description: "Claims copied to request headers.",
      items: obj(
        "A claim to header copy.",
        { header: str("Header name.", { minLength: 1 }), claim: str("Claim name.", { minLength: 1 }) },
        { required: ["header", "claim"] },
      ),
    },
    timeout: duration("Timeout of the jwksUri fetch."),
  },
  {
    required: ["issuer"],
    "x-kubernetes-validations": [
      { rule: "!(has(self.jwks) && has(self.jwksUri))", message: "only one of jwks or jwksUri may be set" },
    ],
  },
);
const requestAuthenticationSpec = obj(
  "Istio's RequestAuthentication: JWTs a waypoint verifies (requests with an invalid token are refused; absent tokens are let through to AuthorizationPolicy).",
  {
    selector,
    targetRef,
    targetRefs,
    jwtRules: { type: "array", maxItems: 4096, description: "Accepted issuers.", items: jwtRule },
  },
  { "x-kubernetes-validations": [onlyOneTargeting] },
);

const GRPC_CODES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];
const faultInjectionSpec = obj(
  "VirtualService's HTTP fault, referenced from an HTTPRoute or GRPCRoute ExtensionRef filter (group ambit.dev, kind FaultInjection).",
  {
    delay: obj(
      "Delay before forwarding.",
      { fixedDelay: duration("How long, e.g. 5s or 100ms."), percentage },
      { required: ["fixedDelay"] },
    ),
    abort: obj(
      "Answer without forwarding.",
      {
        httpStatus: int("HTTP status to answer with.", { minimum: 200, maximum: 599 }),
        grpcStatus: str("gRPC status name to answer with.", { enum: GRPC_CODES }),
        percentage,
      },
      {
        "x-kubernetes-validations": [
          {
            rule: "has(self.httpStatus) != has(self.grpcStatus)",
            message: "exactly one of httpStatus or grpcStatus must be set",
          },
        ],
      },
    ),
  },
  {
    "x-kubernetes-validations": [
      { rule: "has(self.delay) || has(self.abort)", message: "at least one of delay or abort must be set" },
    ],
  },
);

const trafficPolicySpec = obj(
  "DestinationRule's trafficPolicy for a Service, plus a local rate limit; applied by waypoints.",
  {
    targetRef,
    targetRefs,
    loadBalancer: obj(
      "How an endpoint is picked.",
      {
        simple: str("A simple algorithm.", {
          enum: ["UNSPECIFIED", "LEAST_REQUEST", "ROUND_ROBIN", "RANDOM", "PASSTHROUGH", "LEAST_CONN"],
        }),
        consistentHash: obj(
          "Sticky endpoint choice by a hash of the request.",
          {
            httpHeaderName: str("Hash this header.", { minLength: 1 }),
            httpCookie: obj(
              "Hash this cookie (set it when absent).",
              {
                name: str("Cookie name.", { minLength: 1 }),
                path: str("Cookie path."),
                ttl: duration("Cookie lifetime."),
              },
              { required: ["name"] },
            ),
            useSourceIp: { type: "boolean", description: "Hash the source IP." },
            httpQueryParameterName: str("Hash this query parameter.", { minLength: 1 }),
            ringHash: obj("Ring hash.", {
              minimumRingSize: { type: "integer", format: "int64", minimum: 1 },
            }),
            maglev: obj("Maglev.", { tableSize: { type: "integer", format: "int64", minimum: 1 } }),
          },
          {
            "x-kubernetes-validations": [
              {
                rule: "(has(self.httpHeaderName) ? 1 : 0) + (has(self.httpCookie) ? 1 : 0) + (has(self.useSourceIp) ? 1 : 0) + (has(self.httpQueryParameterName) ? 1 : 0) == 1",
                message:
                  "exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName must be set",
              },
              {
                rule: "!(has(self.ringHash) && has(self.maglev))",
                message: "only one of ringHash or maglev may be set",
              },
            ],
          },
        ),
      },
      {
        "x-kubernetes-validations": [
          {
            rule: "!(has(self.simple) && has(self.consistentHash))",
            message: "only one of simple or consistentHash may be set",
          },
        ],
      },
    ),
    connectionPool: obj("Limits on connections and requests to the service.", {
      tcp: obj("TCP limits.", {
        maxConnections: int("Most connections to an endpoint.", { minimum: 1 }),
        connectTimeout: duration("Connect timeout."),
        idleTimeout: duration("Close connections idle this long."),
        maxConnectionDuration: duration("Close connections after this long."),
      }),
      http: obj("HTTP limits.", {
        http1MaxPendingRequests: int("Most requests waiting for a connection.", { minimum: 1 }),
        http2MaxRequests: int("Most concurrent requests.", { minimum: 1 }),
        maxRequestsPerConnection: int("Requests before a connection is closed (0: no limit).", {
          minimum: 0,
        }),
        maxRetries: int("Most concurrent retries.", { minimum: 0 }),
        idleTimeout: duration("Close connections idle this long."),
        maxConcurrentStreams: int("HTTP/2 streams per connection.", { minimum: 1 }),
      }),
    }),
    outlierDetection: obj("Eject endpoints that keep failing.", {
      consecutive5xxErrors: int("5xx answers in a row before ejection (0 disables).", { minimum: 0 }),
      consecutiveGatewayErrors: int("502/503/504 in a row before ejection (0 disables).", { minimum: 0 }),
      interval: duration("How often endpoints are checked."),
      baseEjectionTime: duration("Ejection time, multiplied by the number of ejections."),
      maxEjectionPercent: int("Most endpoints ejected at once, percent.", { minimum: 0, maximum: 100 }),
      minHealthPercent: int("Outlier detection stops below this share of healthy endpoints, percent.", {
        minimum: 0,
        maximum: 100,
      }),
    }),
    rateLimit: obj(
      "A token bucket per waypoint replica (Envoy's local_ratelimit); requests over it get 429.",
      {
        tokenBucket: obj(
          "The bucket.",
          {
            maxTokens: int("Bucket size.", { minimum: 1 }),
            tokensPerFill: int("Tokens added each fillInterval (default 1).", { minimum: 1 }),
            fillInterval: duration("Refill period."),
          },
          { required: ["maxTokens", "fillInterval"] },
        ),
      },
      { required: ["tokenBucket"] },
    ),
  },
  {
    "x-kubernetes-validations": [
      {
        rule: "has(self.targetRef) != has(self.targetRefs)",
        message: "exactly one of targetRef or targetRefs must be set",
      },
      {
        rule: "!has(self.targetRef) || self.targetRef.kind == 'Service'",
        message: "targetRef must be a Service",
      },
      {
        rule: "!has(self.targetRefs) || self.targetRefs.all(r, r.kind == 'Service')",
        message: "targetRefs must be Services",
      },
    ],
  },
);

const accepted = {
  jsonPath: '.status.conditions[?(@.type=="Accepted")].status',
  name: "Accepted",
  type: "string",
};
const age = { jsonPath: ".metadata.creationTimestamp", name: "Age", type: "date" };

const KINDS = [
  {
    kind: "AuthorizationPolicy",
    plural: "authorizationpolicies",
    shortNames: ["ap"],
    spec: authorizationPolicySpec,
    columns: [{ jsonPath: ".spec.action", name: "Action", type: "string" }, accepted, age],
  },
  {
    kind: "PeerAuthentication",
    plural: "peerauthentications",
    shortNames: ["pa"],
    spec: peerAuthenticationSpec,
    columns: [{ jsonPath: ".spec.mtls.mode", name: "Mode", type: "string" }, accepted, age],
  },
  {
    kind: "RequestAuthentication",
    plural: "requestauthentications",
    shortNames: ["ra"],
    spec: requestAuthenticationSpec,
    columns: [{ jsonPath: ".spec.jwtRules[0].issuer", name: "Issuer", type: "string" }, accepted, age],
  },
  {
    kind: "FaultInjection",
    plural: "faultinjections",
    shortNames: ["fi"],
    spec: faultInjectionSpec,
    columns: [
      { jsonPath: ".spec.delay.fixedDelay", name: "Delay", type: "string" },
      { jsonPath: ".spec.abort.httpStatus", name: "Abort", type: "integer" },
      accepted,
      age,
    ],
  },
  {
    kind: "TrafficPolicy",
    plural: "trafficpolicies",
    shortNames: ["tp"],
    spec: trafficPolicySpec,
    columns: [{ jsonPath: ".spec.targetRefs[0].name", name: "Target", type: "string" }, accepted, age],
  },
];

for (const k of KINDS) {
  const crd = {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${k.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/part-of": "ambit" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.kind.toLowerCase(),
        shortNames: k.shortNames,
        categories: ["ambit"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.columns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: k.spec.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: k.spec,
                status,
              },
            },
          },
        },
      ],
    },
  };
  const file = join(here, `${GROUP}_${k.plural}.yaml`);
  writeFileSync(
    file,
    `# Generated by manifests/crds/generate.mjs; do not edit.\n${stringify(crd, { lineWidth: 0, aliasDuplicateObjects: false })}`,
  );
  console.log(`wrote ${file}`);
}
