// Schema checks for HTTPRoute and GRPCRoute (Gateway API v1, standard and
// experimental channels), as the CRDs' OpenAPI schemas would refuse them.
import type { FieldCheck, Obj } from "./field-check.js";

function checkHeaderFilter(c: FieldCheck, v: unknown, f: string): void {
  const h = c.object(v, f);
  if (!h) return;
  for (const key of ["set", "add"]) {
    for (const [e, ef] of c.objects(h[key], `${f}.${key}`)) {
      c.string(e.name, `${ef}.name`, true);
      c.string(e.value, `${ef}.value`, true);
    }
  }
  c.strings(h.remove, `${f}.remove`);
}

function checkRouteFilter(c: FieldCheck, flt: Obj, f: string, types: readonly string[]): void {
  const type = c.oneOf(flt.type, `${f}.type`, types, true);
  checkHeaderFilter(c, flt.requestHeaderModifier, `${f}.requestHeaderModifier`);
  checkHeaderFilter(c, flt.responseHeaderModifier, `${f}.responseHeaderModifier`);
  const mirror = c.object(flt.requestMirror, `${f}.requestMirror`, type === "RequestMirror");
  if (mirror) {
    const br = c.object(mirror.backendRef, `${f}.requestMirror.backendRef`, true);
    if (br) {
      c.string(br.name, `${f}.requestMirror.backendRef.name`, true);
      c.port(br.port, `${f}.requestMirror.backendRef.port`);
    }
    c.int(mirror.percent, `${f}.requestMirror.percent`, { min: 0, max: 100 });
  }
  const ext = c.object(flt.extensionRef, `${f}.extensionRef`, type === "ExtensionRef");
  if (ext) {
    c.string(ext.group, `${f}.extensionRef.group`, true);
    c.string(ext.kind, `${f}.extensionRef.kind`, true);
    c.string(ext.name, `${f}.extensionRef.name`, true);
  }
  const redirect = c.object(flt.requestRedirect, `${f}.requestRedirect`, type === "RequestRedirect");
  if (redirect) {
    c.oneOf(redirect.scheme, `${f}.requestRedirect.scheme`, ["http", "https"] as const);
    c.port(redirect.port, `${f}.requestRedirect.port`);
    if (
      redirect.statusCode !== undefined &&
      ![301, 302, 303, 307, 308].includes(redirect.statusCode as number)
    ) {
      c.fail(
        `${f}.requestRedirect.statusCode`,
        `must be one of 301, 302, 303, 307, 308, got ${JSON.stringify(redirect.statusCode)}`,
      );
    }
  }
  c.object(flt.urlRewrite, `${f}.urlRewrite`, type === "URLRewrite");
}

const HTTP_FILTERS = [
  "RequestHeaderModifier",
  "ResponseHeaderModifier",
  "RequestMirror",
  "RequestRedirect",
  "URLRewrite",
  "ExtensionRef",
  "CORS",
  "ExternalAuth",
] as const;
const GRPC_FILTERS = [
  "RequestHeaderModifier",
  "ResponseHeaderModifier",
  "RequestMirror",
  "ExtensionRef",
] as const;

export function checkRoute(c: FieldCheck, o: Obj, grpc: boolean): void {
  const spec = c.object(o.spec, "spec", true);
  if (!spec) return;
  for (const [p, pf] of c.objects(spec.parentRefs, "spec.parentRefs")) {
    c.string(p.name, `${pf}.name`, true);
    c.port(p.port, `${pf}.port`);
  }
  c.strings(spec.hostnames, "spec.hostnames");
  const filterTypes = grpc ? GRPC_FILTERS : HTTP_FILTERS;
  for (const [rule, rf] of c.objects(spec.rules, "spec.rules")) {
    for (const [m, mf] of c.objects(rule.matches, `${rf}.matches`)) {
      if (grpc) {
        const method = c.object(m.method, `${mf}.method`);
        if (method) c.oneOf(method.type, `${mf}.method.type`, ["Exact", "RegularExpression"] as const);
      } else {
        const path = c.object(m.path, `${mf}.path`);
        if (path) {
          c.oneOf(path.type, `${mf}.path.type`, ["Exact", "PathPrefix", "RegularExpression"] as const);
          c.string(path.value, `${mf}.path.value`);
        }
        for (const [q, qf] of c.objects(m.queryParams, `${mf}.queryParams`))
          c.string(q.name, `${qf}.name`, true);
        c.string(m.method, `${mf}.method`);
      }
      for (const [h, hf] of c.objects(m.headers, `${mf}.headers`)) {
        c.string(h.name, `${hf}.name`, true);
        c.string(h.value, `${hf}.value`, true);
        c.oneOf(h.type, `${hf}.type`, ["Exact", "RegularExpression"] as const);
      }
    }
    for (const [flt, ff] of c.objects(rule.filters, `${rf}.filters`))
      checkRouteFilter(c, flt, ff, filterTypes);
    for (const [b, bf] of c.objects(rule.backendRefs, `${rf}.backendRefs`)) {
      c.string(b.name, `${bf}.name`, true);
      c.port(b.port, `${bf}.port`);
      c.int(b.weight, `${bf}.weight`, { min: 0, max: 1000000 });
      for (const [flt, ff] of c.objects(b.filters, `${bf}.filters`))
        checkRouteFilter(c, flt, ff, filterTypes);
    }
    const t = c.object(rule.timeouts, `${rf}.timeouts`);
    if (t) {
      c.duration(t.request, `${rf}.timeouts.request`);
      c.duration(t.backendRequest, `${rf}.timeouts.backendRequest`);
    }
    const r = c.object(rule.retry, `${rf}.retry`);
    if (r) {
      c.int(r.attempts, `${rf}.retry.attempts`, { min: 0 });
      c.duration(r.backoff, `${rf}.retry.backoff`);
      const codes = c.array(r.codes, `${rf}.retry.codes`);
      codes?.forEach((code, i) => {
        c.int(code, `${rf}.retry.codes[${i}]`, { min: 400, max: 599 });
      });
    }
  }
}
