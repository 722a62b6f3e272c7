// Schema checks for the kinds ambit reads from local YAML: what the API
// server (core types, Gateway API CRDs, ambit.dev CRD schemas) would refuse is
// refused here too, with the field named. Semantic checks that need other
// objects (a missing Gateway, a bad ipBlock) belong to the translator.
import type { AnyObject } from "../objects.js";
import { FieldCheck, type Obj } from "./field-check.js";
import { checkRoute } from "./validate-routes.js";

type KindName = AnyObject["kind"];

const PROTOCOLS = ["TCP", "UDP", "SCTP"] as const;

function checkMetadata(c: FieldCheck, o: Obj): void {
  const md = c.object(o.metadata, "metadata", true);
  if (!md) return;
  c.dnsSubdomain(md.name, "metadata.name", true);
  if (md.namespace !== undefined) c.dnsLabel(md.namespace, "metadata.namespace");
  c.stringMap(md.labels, "metadata.labels");
  c.stringMap(md.annotations, "metadata.annotations");
  c.string(md.uid, "metadata.uid");
  c.int(md.generation, "metadata.generation", { min: 0 });
  c.string(md.creationTimestamp, "metadata.creationTimestamp");
  for (const [ref, f] of c.objects(md.ownerReferences, "metadata.ownerReferences")) {
    c.string(ref.kind, `${f}.kind`, true);
    c.string(ref.name, `${f}.name`, true);
  }
}

function checkProbe(c: FieldCheck, v: unknown, field: string): void {
  const p = c.object(v, field);
  if (!p) return;
  const exec = c.object(p.exec, `${field}.exec`);
  if (exec) c.strings(exec.command, `${field}.exec.command`);
  const http = c.object(p.httpGet, `${field}.httpGet`);
  if (http) {
    c.portOrName(http.port, `${field}.httpGet.port`, true);
    c.string(http.path, `${field}.httpGet.path`);
  }
  const tcp = c.object(p.tcpSocket, `${field}.tcpSocket`);
  if (tcp) c.portOrName(tcp.port, `${field}.tcpSocket.port`, true);
  if (!exec && !http && !tcp && !p.grpc) c.fail(field, "needs one of exec, httpGet, tcpSocket, grpc");
  for (const k of [
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
  ]) {
    c.int(p[k], `${field}.${k}`, { min: 0 });
  }
}

function checkContainer(c: FieldCheck, ct: Obj, f: string): void {
  c.dnsLabel(ct.name, `${f}.name`, true);
  c.string(ct.image, `${f}.image`);
  c.strings(ct.command, `${f}.command`);
  c.strings(ct.args, `${f}.args`);
  c.string(ct.workingDir, `${f}.workingDir`);
  for (const [e, ef] of c.objects(ct.env, `${f}.env`)) {
    c.string(e.name, `${ef}.name`, true);
    if (e.value !== undefined) c.string(e.value, `${ef}.value`);
  }
  const names = new Set<string>();
  for (const [p, pf] of c.objects(ct.ports, `${f}.ports`)) {
    c.port(p.containerPort, `${pf}.containerPort`, true);
    c.oneOf(p.protocol, `${pf}.protocol`, PROTOCOLS);
    if (p.name !== undefined) {
      const n = c.portOrName(p.name, `${pf}.name`);
      if (typeof n === "string") {
        if (names.has(n)) c.fail(`${pf}.name`, `duplicate port name ${JSON.stringify(n)}`);
        names.add(n);
      } else if (typeof n === "number") c.fail(`${pf}.name`, "must contain a letter");
    }
  }
  checkProbe(c, ct.readinessProbe, `${f}.readinessProbe`);
  checkProbe(c, ct.livenessProbe, `${f}.livenessProbe`);
  checkProbe(c, ct.startupProbe, `${f}.startupProbe`);
}

function checkPodSpec(c: FieldCheck, v: unknown, f: string): void {
  const spec = c.object(v, f, true);
  if (!spec) return;
  c.string(spec.nodeName, `${f}.nodeName`);
  c.stringMap(spec.nodeSelector, `${f}.nodeSelector`);
  c.dnsSubdomain(spec.serviceAccountName, `${f}.serviceAccountName`);
  c.dnsSubdomain(spec.serviceAccount, `${f}.serviceAccount`);
  c.boolean(spec.hostNetwork, `${f}.hostNetwork`);
  c.oneOf(spec.restartPolicy, `${f}.restartPolicy`, ["Always", "OnFailure", "Never"] as const);
  c.int(spec.terminationGracePeriodSeconds, `${f}.terminationGracePeriodSeconds`, { min: 0 });
  const containers = c.objects(spec.containers, `${f}.containers`, true);
  if (Array.isArray(spec.containers) && spec.containers.length === 0)
    c.fail(`${f}.containers`, "must have at least one container");
  const seen = new Set<unknown>();
  for (const [ct, cf] of containers) {
    checkContainer(c, ct, cf);
    if (seen.has(ct.name)) c.fail(`${cf}.name`, `duplicate container name ${JSON.stringify(ct.name)}`);
    seen.add(ct.name);
  }
  for (const [ct, cf] of c.objects(spec.initContainers, `${f}.initContainers`)) checkContainer(c, ct, cf);
}

function checkTemplate(c: FieldCheck, spec: Obj, withSelector: boolean): void {
  const tpl = c.object(spec.template, "spec.template", true);
  if (!tpl) return;
  const md = c.object(tpl.metadata, "spec.template.metadata");
  const labels = md ? c.stringMap(md.labels, "spec.template.metadata.labels") : undefined;
  checkPodSpec(c, tpl.spec, "spec.template.spec");
  if (!withSelector) return;
  const sel = c.object(spec.selector, "spec.selector", true);
  if (!sel) return;
  const ml = c.stringMap(sel.matchLabels, "spec.selector.matchLabels");
  if (sel.matchExpressions !== undefined)
    c.fail("spec.selector.matchExpressions", "is not supported by the local provider; use matchLabels");
  if (!ml || Object.keys(ml).length === 0) {
    if (sel.matchExpressions === undefined) c.fail("spec.selector.matchLabels", "is required");
    return;
  }
  for (const [k, v] of Object.entries(ml)) {
    if (labels?.[k] !== v) c.fail("spec.selector", `does not match template labels (${k}=${v})`);
  }
}

function checkWorkloadSelector(c: FieldCheck, v: unknown, f: string): void {
  const sel = c.object(v, f);
  if (sel) c.stringMap(sel.matchLabels, `${f}.matchLabels`);
}

function checkTargetRefs(c: FieldCheck, spec: Obj): void {
  const one = c.object(spec.targetRef, "spec.targetRef");
  const refs: [Obj, string][] = one ? [[one, "spec.targetRef"]] : [];
  refs.push(...c.objects(spec.targetRefs, "spec.targetRefs"));
  for (const [r, f] of refs) {
    c.string(r.group, `${f}.group`);
    c.string(r.kind, `${f}.kind`, true);
    c.string(r.name, `${f}.name`, true);
  }
}

const SPEC_CHECKS: Partial<Record<KindName, (c: FieldCheck, o: Obj) => void>> = {
  Pod(c, o) {
    checkPodSpec(c, o.spec, "spec");
    const st = c.object(o.status, "status");
    if (!st) return;
    c.ip(st.podIP, "status.podIP");
    for (const [p, pf] of c.objects(st.podIPs, "status.podIPs")) c.ip(p.ip, `${pf}.ip`, true);
    c.oneOf(st.phase, "status.phase", ["Pending", "Running", "Succeeded", "Failed", "Unknown"] as const);
    for (const [cond, cf] of c.objects(st.conditions, "status.conditions")) {
      c.string(cond.type, `${cf}.type`, true);
      c.oneOf(cond.status, `${cf}.status`, ["True", "False", "Unknown"] as const, true);
    }
  },
  Service(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    const type = c.oneOf(spec.type, "spec.type", [
      "ClusterIP",
      "NodePort",
      "LoadBalancer",
      "ExternalName",
    ] as const);
    if (spec.clusterIP !== undefined && spec.clusterIP !== "None" && spec.clusterIP !== "")
      c.ip(spec.clusterIP, "spec.clusterIP");
    const ips = c.array(spec.clusterIPs, "spec.clusterIPs");
    ips?.forEach((ip, i) => {
      if (ip !== "None") c.ip(ip, `spec.clusterIPs[${i}]`, true);
    });
    c.stringMap(spec.selector, "spec.selector");
    if (type === "ExternalName") c.string(spec.externalName, "spec.externalName", true);
    const ports = c.objects(spec.ports, "spec.ports");
    const names = new Set<string>();
    const numbers = new Set<string>();
    for (const [p, pf] of ports) {
      const port = c.port(p.port, `${pf}.port`, true);
      if (p.targetPort !== undefined) c.portOrName(p.targetPort, `${pf}.targetPort`);
      const proto = c.oneOf(p.protocol, `${pf}.protocol`, PROTOCOLS) ?? "TCP";
      c.string(p.appProtocol, `${pf}.appProtocol`);
      const name = p.name === undefined ? undefined : c.dnsLabel(p.name, `${pf}.name`);
      if (ports.length > 1 && p.name === undefined)
        c.fail(`${pf}.name`, "is required when a Service has more than one port");
      if (name !== undefined) {
        if (names.has(name)) c.fail(`${pf}.name`, `duplicate port name ${JSON.stringify(name)}`);
        names.add(name);
      }
      if (port !== undefined) {
        if (numbers.has(`${port}/${proto}`)) c.fail(`${pf}.port`, `duplicate port ${port}/${proto}`);
        numbers.add(`${port}/${proto}`);
      }
    }
  },
  EndpointSlice(c, o) {
    c.oneOf(o.addressType, "addressType", ["IPv4", "IPv6", "FQDN"] as const, true);
    for (const [e, ef] of c.objects(o.endpoints, "endpoints", true))
      c.strings(e.addresses, `${ef}.addresses`);
    for (const [p, pf] of c.objects(o.ports, "ports")) c.port(p.port, `${pf}.port`);
  },
  Node(c, o) {
    const st = c.object(o.status, "status");
    if (!st) return;
    for (const [a, af] of c.objects(st.addresses, "status.addresses")) {
      c.string(a.type, `${af}.type`, true);
      c.string(a.address, `${af}.address`, true);
    }
  },
  Deployment(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    c.int(spec.replicas, "spec.replicas", { min: 0 });
    checkTemplate(c, spec, true);
  },
  ReplicaSet(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    c.int(spec.replicas, "spec.replicas", { min: 0 });
    checkTemplate(c, spec, true);
  },
  StatefulSet(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    c.int(spec.replicas, "spec.replicas", { min: 0 });
    c.string(spec.serviceName, "spec.serviceName");
    checkTemplate(c, spec, true);
  },
  DaemonSet(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (spec) checkTemplate(c, spec, true);
  },
  Job(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    c.int(spec.parallelism, "spec.parallelism", { min: 0 });
    c.int(spec.completions, "spec.completions", { min: 0 });
    c.int(spec.backoffLimit, "spec.backoffLimit", { min: 0 });
    checkTemplate(c, spec, false);
    const tpl = spec.template as Obj | undefined;
    const rp = (tpl?.spec as Obj | undefined)?.restartPolicy;
    if (rp !== "Never" && rp !== "OnFailure")
      c.fail(
        "spec.template.spec.restartPolicy",
        `must be Never or OnFailure for a Job, got ${JSON.stringify(rp)}`,
      );
  },
  GatewayClass(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (spec) c.string(spec.controllerName, "spec.controllerName", true);
  },
  Gateway(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    c.string(spec.gatewayClassName, "spec.gatewayClassName", true);
    const names = new Set<unknown>();
    for (const [l, lf] of c.objects(spec.listeners, "spec.listeners", true)) {
      c.dnsLabel(l.name, `${lf}.name`, true);
      c.port(l.port, `${lf}.port`, true);
      c.string(l.protocol, `${lf}.protocol`, true);
      c.string(l.hostname, `${lf}.hostname`);
      if (names.has(l.name)) c.fail(`${lf}.name`, `duplicate listener name ${JSON.stringify(l.name)}`);
      names.add(l.name);
    }
    for (const [a, af] of c.objects(spec.addresses, "spec.addresses")) c.string(a.value, `${af}.value`, true);
  },
  HTTPRoute: (c, o) => checkRoute(c, o, false),
  GRPCRoute: (c, o) => checkRoute(c, o, true),
  AuthorizationPolicy(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    checkWorkloadSelector(c, spec.selector, "spec.selector");
    checkTargetRefs(c, spec);
    c.oneOf(spec.action, "spec.action", ["ALLOW", "DENY", "AUDIT", "CUSTOM"] as const);
    for (const [rule, rf] of c.objects(spec.rules, "spec.rules")) {
      for (const [from, ff] of c.objects(rule.from, `${rf}.from`)) {
        const src = c.object(from.source, `${ff}.source`, true);
        if (!src) continue;
        for (const [k, v] of Object.entries(src)) c.strings(v, `${ff}.source.${k}`);
      }
      for (const [to, tf] of c.objects(rule.to, `${rf}.to`)) {
        const op = c.object(to.operation, `${tf}.operation`, true);
        if (!op) continue;
        for (const [k, v] of Object.entries(op)) {
          if (k === "ports" || k === "notPorts") c.array(v, `${tf}.operation.${k}`);
          else c.strings(v, `${tf}.operation.${k}`);
        }
      }
      for (const [w, wf] of c.objects(rule.when, `${rf}.when`)) {
        c.string(w.key, `${wf}.key`, true);
        c.strings(w.values, `${wf}.values`);
        c.strings(w.notValues, `${wf}.notValues`);
      }
    }
  },
  PeerAuthentication(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    checkWorkloadSelector(c, spec.selector, "spec.selector");
    const modes = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"] as const;
    const mtls = c.object(spec.mtls, "spec.mtls");
    if (mtls) c.oneOf(mtls.mode, "spec.mtls.mode", modes);
    const plm = c.object(spec.portLevelMtls, "spec.portLevelMtls");
    if (plm) {
      for (const [port, v] of Object.entries(plm)) {
        const f = `spec.portLevelMtls.${port}`;
        if (!/^[0-9]+$/.test(port) || Number(port) < 1 || Number(port) > 65535)
          c.fail(f, "key must be a port number 1-65535");
        const m = c.object(v, f, true);
        if (m) c.oneOf(m.mode, `${f}.mode`, modes);
      }
      if (Object.keys(plm).length > 0 && !c.object(spec.selector, "spec.selector")) {
        c.fail(
          "spec.portLevelMtls",
          "requires spec.selector (port-level mTLS applies to selected workloads only)",
        );
      }
    }
  },
  RequestAuthentication(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    checkWorkloadSelector(c, spec.selector, "spec.selector");
    checkTargetRefs(c, spec);
    for (const [r, rf] of c.objects(spec.jwtRules, "spec.jwtRules")) {
      c.string(r.issuer, `${rf}.issuer`, true);
      c.strings(r.audiences, `${rf}.audiences`);
      c.string(r.jwksUri, `${rf}.jwksUri`);
      c.string(r.jwks, `${rf}.jwks`);
      for (const [h, hf] of c.objects(r.fromHeaders, `${rf}.fromHeaders`))
        c.string(h.name, `${hf}.name`, true);
      c.strings(r.fromParams, `${rf}.fromParams`);
    }
  },
  FaultInjection(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    const delay = c.object(spec.delay, "spec.delay");
    if (delay) {
      c.duration(delay.fixedDelay, "spec.delay.fixedDelay", true);
      const pct = c.object(delay.percentage, "spec.delay.percentage");
      if (pct) c.number(pct.value, "spec.delay.percentage.value", { min: 0, max: 100 });
    }
    const abort = c.object(spec.abort, "spec.abort");
    if (abort) {
      c.int(abort.httpStatus, "spec.abort.httpStatus", { min: 200, max: 599 });
      c.string(abort.grpcStatus, "spec.abort.grpcStatus");
      if (abort.httpStatus === undefined && abort.grpcStatus === undefined)
        c.fail("spec.abort", "needs httpStatus or grpcStatus");
      const pct = c.object(abort.percentage, "spec.abort.percentage");
      if (pct) c.number(pct.value, "spec.abort.percentage.value", { min: 0, max: 100 });
    }
    if (!delay && !abort) c.fail("spec", "needs delay or abort");
  },
  TrafficPolicy(c, o) {
    const spec = c.object(o.spec, "spec", true);
    if (!spec) return;
    checkTargetRefs(c, spec);
    const lb = c.object(spec.loadBalancer, "spec.loadBalancer");
    if (lb) {
      c.oneOf(lb.simple, "spec.loadBalancer.simple", [
        "UNSPECIFIED",
        "LEAST_REQUEST",
        "ROUND_ROBIN",
        "RANDOM",
        "PASSTHROUGH",
        "LEAST_CONN",
      ] as const);
      c.object(lb.consistentHash, "spec.loadBalancer.consistentHash");
    }
    const cp = c.object(spec.connectionPool, "spec.connectionPool");
    if (cp) {
      const tcp = c.object(cp.tcp, "spec.connectionPool.tcp");
      if (tcp) {
        c.int(tcp.maxConnections, "spec.connectionPool.tcp.maxConnections", { min: 0 });
        c.duration(tcp.connectTimeout, "spec.connectionPool.tcp.connectTimeout");
      }
      const http = c.object(cp.http, "spec.connectionPool.http");
      if (http) {
        for (const k of [
          "http1MaxPendingRequests",
          "http2MaxRequests",
          "maxRequestsPerConnection",
          "maxRetries",
          "maxConcurrentStreams",
        ]) {
          c.int(http[k], `spec.connectionPool.http.${k}`, { min: 0 });
        }
        c.duration(http.idleTimeout, "spec.connectionPool.http.idleTimeout");
      }
    }
    const od = c.object(spec.outlierDetection, "spec.outlierDetection");
    if (od) {
      c.int(od.consecutive5xxErrors, "spec.outlierDetection.consecutive5xxErrors", { min: 0 });
      c.int(od.consecutiveGatewayErrors, "spec.outlierDetection.consecutiveGatewayErrors", { min: 0 });
      c.duration(od.interval, "spec.outlierDetection.interval");
      c.duration(od.baseEjectionTime, "spec.outlierDetection.baseEjectionTime");
      c.int(od.maxEjectionPercent, "spec.outlierDetection.maxEjectionPercent", { min: 0, max: 100 });
    }
    const rl = c.object(spec.rateLimit, "spec.rateLimit");
    if (rl) {
      const tb = c.object(rl.tokenBucket, "spec.rateLimit.tokenBucket", true);
      if (tb) {
        c.int(tb.maxTokens, "spec.rateLimit.tokenBucket.maxTokens", { required: true, min: 1 });
        c.int(tb.tokensPerFill, "spec.rateLimit.tokenBucket.tokensPerFill", { min: 1 });
        c.duration(tb.fillInterval, "spec.rateLimit.tokenBucket.fillInterval", true);
      }
    }
  },
};

/** Validates one object of a known kind; returns its field problems (empty when valid). */
export function validateObject(kind: KindName, o: Obj): { field: string; reason: string }[] {
  const c = new FieldCheck();
  checkMetadata(c, o);
  SPEC_CHECKS[kind]?.(c, o);
  return c.problems;
}
