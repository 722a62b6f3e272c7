// Schema checks of the local provider: full, valid objects of every kind pass
// untouched; each broken field is refused with the object and field named.
import t from "tap";
import { parseFile } from "../../controller/provider/local/index.js";

const VALID = `
apiVersion: v1
kind: Node
metadata: {name: node-1}
status:
  addresses: [{type: InternalIP, address: 172.30.0.1}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: server-abc, namespace: demo}
addressType: IPv4
endpoints: [{addresses: [10.244.1.10], conditions: {ready: true}}]
ports: [{name: http, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ambit-waypoint}
spec: {controllerName: ambit.dev/waypoint}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  hostnames: [reviews.demo.svc.cluster.local]
  rules:
    - name: canary
      matches:
        - path: {type: PathPrefix, value: /api}
          headers: [{name: x-user, value: tester}]
          queryParams: [{type: Exact, name: debug, value: "1"}]
          method: GET
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: x-a, value: b}], add: [{name: x-c, value: d}], remove: [x-e]}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {remove: [server]}
        - type: RequestMirror
          requestMirror: {backendRef: {name: shadow, port: 9080}, percent: 50}
        - type: URLRewrite
          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
        - type: ExtensionRef
          extensionRef: {group: ambit.dev, kind: FaultInjection, name: slow}
        - type: CORS
          cors: {allowOrigins: ["https://a.example"], allowMethods: [GET]}
      backendRefs:
        - {name: reviews-v1, port: 9080, weight: 90}
        - {name: reviews-v2, port: 9080, weight: 10}
      timeouts: {request: 10s, backendRequest: 2500ms}
      retry: {attempts: 3, backoff: 100ms, codes: [503, 504]}
    - filters:
        - type: RequestRedirect
          requestRedirect: {scheme: https, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
    - matches: [{method: {type: Exact, service: echo.Echo, method: Say}, headers: [{name: x-a, value: b}]}]
      filters: [{type: ExtensionRef, extensionRef: {group: ambit.dev, kind: FaultInjection, name: abort}}]
      backendRefs: [{name: echo, port: 9000}]
---
apiVersion: ambit.dev/v1alpha1
kind: FaultInjection
metadata: {name: slow, namespace: demo}
spec:
  delay: {fixedDelay: 1.5s, percentage: {value: 12.5}}
  abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}
---
apiVersion: ambit.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: reviews, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: reviews}]
  loadBalancer: {consistentHash: {httpHeaderName: x-user}}
  connectionPool:
    tcp: {maxConnections: 100, connectTimeout: 1s}
    http: {http1MaxPendingRequests: 10, maxRetries: 2, idleTimeout: 30s}
  outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  rateLimit: {tokenBucket: {maxTokens: 10, tokensPerFill: 5, fillInterval: 1s}}
---
apiVersion: ambit.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: jwt, namespace: demo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  jwtRules:
    - issuer: https://issuer.example
      audiences: [api]
      jwksUri: https://issuer.example/jwks.json
      fromHeaders: [{name: authorization, prefix: "Bearer "}]
---
apiVersion: ambit.dev/v1alpha1
kind: PeerAuthentication
metadata: {name: ports, namespace: demo}
spec:
  selector: {matchLabels: {app: server}}
  mtls: {mode: STRICT}
  portLevelMtls: {"9090": {mode: PERMISSIVE}}
---
apiVersion: v1
kind: Pod
metadata: {name: full, namespace: demo, labels: {app: full}, annotations: {a: b}}
spec:
  nodeName: node-1
  serviceAccountName: full
  restartPolicy: OnFailure
  initContainers: [{name: init, command: ["true"]}]
  containers:
    - name: main
      command: [node, -e, "1"]
      args: [x]
      workingDir: /tmp
      env: [{name: A, value: "1"}, {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
      ports: [{name: http, containerPort: 8080, protocol: TCP}]
      readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
      livenessProbe: {tcpSocket: {port: 8080}}
      startupProbe: {exec: {command: ["true"]}}
status:
  phase: Running
  podIP: 10.244.1.10
  podIPs: [{ip: 10.244.1.10}]
  conditions: [{type: Ready, status: "True"}]
`;

t.test("valid objects of every kind pass", async (t) => {
  const r = parseFile(VALID, "valid.yaml");
  t.same(
    r.errors.map((e) => e.message),
    [],
  );
  t.equal(r.objects.length, 10);
});

const BAD: [string, string, string][] = [
  // [yaml, field, reason fragment]
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{backendRefs: [{port: 80}]}]}",
    "spec.rules[0].backendRefs[0].name",
    "is required",
  ],
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{filters: [{type: Teleport}]}]}",
    "spec.rules[0].filters[0].type",
    "must be one of",
  ],
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{filters: [{type: RequestMirror}]}]}",
    "spec.rules[0].filters[0].requestMirror",
    "is required",
  ],
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{timeouts: {request: 10}}]}",
    "spec.rules[0].timeouts.request",
    "must be a string",
  ],
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{timeouts: {request: ten}}]}",
    "spec.rules[0].timeouts.request",
    "must be a duration",
  ],
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{retry: {codes: [200]}}]}",
    "spec.rules[0].retry.codes[0]",
    "at least 400",
  ],
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305}}]}]}",
    "spec.rules[0].filters[0].requestRedirect.statusCode",
    "must be one of 301",
  ],
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r}\nspec: {rules: [{filters: [{type: URLRewrite}]}]}",
    "spec.rules[0].filters[0].type",
    "must be one of",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: FaultInjection\nmetadata: {name: f}\nspec: {}",
    "spec",
    "needs delay or abort",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: FaultInjection\nmetadata: {name: f}\nspec: {abort: {httpStatus: 700}}",
    "spec.abort.httpStatus",
    "at most 599",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: FaultInjection\nmetadata: {name: f}\nspec: {delay: {fixedDelay: 1s, percentage: {value: 101}}}",
    "spec.delay.percentage.value",
    "at most 100",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec: {loadBalancer: {simple: FASTEST}}",
    "spec.loadBalancer.simple",
    "must be one of",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec: {rateLimit: {tokenBucket: {maxTokens: 0, fillInterval: 1s}}}",
    "spec.rateLimit.tokenBucket.maxTokens",
    "at least 1",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec: {targetRefs: [{name: x}]}",
    "spec.targetRefs[0].kind",
    "is required",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: RequestAuthentication\nmetadata: {name: j}\nspec: {jwtRules: [{audiences: [a]}]}",
    "spec.jwtRules[0].issuer",
    "is required",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {mtls: {mode: strict}}",
    "spec.mtls.mode",
    "must be one of",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {portLevelMtls: {'8080': {mode: STRICT}}}",
    "spec.portLevelMtls",
    "requires spec.selector",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {action: PERMIT}",
    "spec.action",
    "must be one of",
  ],
  [
    "apiVersion: ambit.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {rules: [{from: [{source: {principals: a}}]}]}",
    "spec.rules[0].from[0].source.principals",
    "must be a list",
  ],
  [
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {selector: {matchLabels: {app: a}}, template: {metadata: {labels: {app: b}}, spec: {containers: [{name: c}]}}}",
    "spec.selector",
    "does not match template labels",
  ],
  [
    "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{name: c}]}}}",
    "spec.template.spec.restartPolicy",
    "must be Never or OnFailure",
  ],
  [
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}, {name: c}]}",
    "spec.containers[1].name",
    "duplicate container name",
  ],
  [
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, readinessProbe: {periodSeconds: 1}}]}",
    "spec.containers[0].readinessProbe",
    "needs one of exec",
  ],
  [
    "apiVersion: v1\nkind: Pod\nmetadata: {name: P}\nspec: {containers: [{name: c}]}",
    "metadata.name",
    "must be a DNS subdomain",
  ],
  [
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.0.256}",
    "status.podIP",
    "must be an IP address",
  ],
  [
    "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}, {port: 81}]}",
    "spec.ports[0].name",
    "is required when a Service has more than one port",
  ],
  [
    "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: nope}",
    "spec.clusterIP",
    "must be an IP address",
  ],
  [
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {gatewayClassName: x, listeners: [{name: a, port: 1, protocol: HBONE}, {name: a, port: 2, protocol: HBONE}]}",
    "spec.listeners[1].name",
    "duplicate listener name",
  ],
  [
    "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nstatus: {addresses: [{type: InternalIP}]}",
    "status.addresses[0].address",
    "is required",
  ],
  [
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv5\nendpoints: []",
    "addressType",
    "must be one of",
  ],
];

t.test("each broken field is refused, naming object and field", async (t) => {
  for (const [yaml, field, reason] of BAD) {
    const r = parseFile(yaml, "bad.yaml");
    t.equal(r.objects.length, 0, `${field}: the object is refused`);
    const e = r.errors.find((x) => x.field === field);
    t.ok(e, `${field}: an error names the field (got ${r.errors.map((x) => x.message).join("; ")})`);
    t.match(e?.message, reason, field);
    t.match(e?.message, "(bad.yaml)", `${field}: names the file`);
  }
});
