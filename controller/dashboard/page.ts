// The dashboard page: one HTML document, no framework; cytoscape (served by
// the dashboard from node_modules) draws the graph. Live by server-sent
// events (EventSource reconnects by itself across controller restarts).
// A padlock (SVG) for mTLS edges and the legend.
const LOCK_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16"><path d="M4.5 7V5a3.5 3.5 0 0 1 7 0v2" fill="none" stroke="#2e7d32" stroke-width="2"/><rect x="2.5" y="7" width="11" height="8" rx="1.5" fill="#2e7d32"/></svg>';
const LOCK_SRC = `data:image/svg+xml,${encodeURIComponent(LOCK_SVG)}`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ambit — mesh</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { font: 14px system-ui, sans-serif; color: #1d2330; }
  body { margin: 0; display: grid; grid-template-columns: 1fr 360px; grid-template-rows: 44px 1fr; height: 100vh; }
  header { grid-column: 1 / 3; display: flex; align-items: center; gap: 16px; padding: 0 16px; background: #1d2330; color: #fff; }
  header b { font-size: 16px; }
  #conn { margin-left: auto; font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #666; }
  #conn.live { background: #2e7d32; }
  #graph { min-height: 0; }
  aside { border-left: 1px solid #ddd; overflow: auto; padding: 12px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: #667; margin: 16px 0 6px; }
  table { border-collapse: collapse; width: 100%; font-size: 12px; }
  td { padding: 2px 4px; vertical-align: top; border-bottom: 1px solid #eee; word-break: break-all; }
  td:first-child { white-space: nowrap; word-break: normal; color: #667; width: 1%; }
  .bad { color: #c62828; } .ok { color: #2e7d32; } .muted { color: #889; }
  .legend span { margin-right: 10px; font-size: 12px; }
</style>
</head>
<body>
<header><b>ambit</b><span class="legend"><span>● workload</span><span>■ service (dotted: its workloads)</span><span><img src="LOCK_SRC" width="11" alt=""> mutual TLS</span><span>◆ waypoint; dashed edge: through it</span><span style="color:#ff8a80">red: errors or denied</span></span>
<span id="conn">connecting…</span></header>
<div id="graph" data-testid="graph"></div>
<aside>
  <h2>Selected</h2><div id="details" class="muted">Click a workload or an edge.</div>
  <h2>Config health</h2><div id="health" class="muted">…</div>
</aside>
<script src="/cytoscape.min.js"></script>
<script>
"use strict";
const LOCK = "LOCK_SRC";
const cy = cytoscape({
  container: document.getElementById("graph"),
  wheelSensitivity: 0.3,
  style: [
    { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4,
        "background-color": "#5c6bc0", width: 28, height: 28 } },
    { selector: "node[kind = 'service']", style: { shape: "round-rectangle", "background-color": "#26a69a" } },
    { selector: "node[kind = 'unknown']", style: { "background-color": "#9e9e9e" } },
    { selector: "node[kind = 'waypoint']", style: { shape: "diamond", "background-color": "#ffb300", width: 32, height: 32 } },
    { selector: "node[?notEnrolled]", style: { "border-width": 2, "border-style": "dashed", "border-color": "#999" } },
    { selector: "node.ns", style: { label: "data(label)", "text-valign": "top", "background-color": "#eef0f7",
        "border-color": "#c5cae9", "border-width": 1, shape: "round-rectangle", "font-weight": "bold", color: "#555" } },
    { selector: "edge", style: { width: 2, "line-color": "#90a4ae", "target-arrow-color": "#90a4ae",
        "target-arrow-shape": "triangle", "curve-style": "bezier", label: "data(label)", "font-size": 10,
        "text-background-color": "#fff", "text-background-opacity": 0.85, "text-background-padding": 2 } },
    { selector: "edge[?active]", style: { width: 3, "line-color": "#3949ab", "target-arrow-color": "#3949ab" } },
    { selector: "edge[?failing]", style: { "line-color": "#c62828", "target-arrow-color": "#c62828", color: "#c62828" } },
    { selector: "edge[?waypoint]", style: { "line-style": "dashed" } },
    { selector: "edge[?mtls]", style: { "text-margin-y": 12 } },
    { selector: "node.lock", style: { width: 16, height: 16, shape: "ellipse", "background-color": "#fff",
        "background-image": LOCK, "background-width": "70%", "background-height": "70%", "border-width": 1,
        "border-color": "#2e7d32", events: "no", label: "" } },
    { selector: "edge.backs", style: { width: 1, "line-style": "dotted", "line-color": "#b0bec5",
        "target-arrow-shape": "none", label: "" } },
    { selector: ":selected", style: { "overlay-color": "#ffb300", "overlay-opacity": 0.25 } },
  ],
});
window.cy = cy;
// A lock at the middle of every mTLS edge: cytoscape draws no glyph fonts lack, so it is a tiny node.
function placeLocks() {
  const at = cy.edges("[?mtls]").map((e) => ({ id: "lock:" + e.id(), position: { ...e.midpoint() } }));
  cy.batch(() => {
    cy.nodes(".lock").remove();
    for (const l of at)
      cy.add({ group: "nodes", data: { id: l.id }, classes: "lock", position: l.position, grabbable: false, selectable: false });
  });
}
cy.on("dragfree", "node", placeLocks);
let graph = { nodes: [], edges: [] };
let layoutKey = "";
const fmt = (n, d = 1) => (n >= 100 ? Math.round(n) : Number(n.toFixed(d))).toString();
const bytes = (b) => b >= 1e6 ? fmt(b / 1e6) + " MB/s" : b >= 1e3 ? fmt(b / 1e3) + " kB/s" : fmt(b, 0) + " B/s";
function edgeLabel(e) {
  const parts = [(e.waypoint ? "◆ " : "") + fmt(e.rps) + (e.protocol === "http" ? " rps" : " conn/s")];
  // L4 edges fail only by denial; L7 errors include denials (403) and failed requests.
  if (e.protocol === "http" || e.errorRate > 0) parts.push(fmt(e.errorRate * 100) + (e.protocol === "tcp" ? "% denied" : "% err"));
  if (e.p99Ms !== undefined) parts.push("p99 " + fmt(e.p99Ms) + " ms");
  if (e.bps > 0) parts.push(bytes(e.bps));
  return parts.join(" · ");
}
// Deterministic left-to-right flow: a node's column is its longest path from
// a caller (callers → services → the workloads behind them); namespaces are
// bands one below the other. Same mesh, same picture, on every reload.
function flowPositions(g) {
  const next = new Map();
  for (const e of [...g.edges, ...(g.links || [])]) {
    if (!next.has(e.source)) next.set(e.source, []);
    next.get(e.source).push(e.target);
  }
  const rank = new Map(g.nodes.map((n) => [n.id, 0]));
  for (let i = 0; i < g.nodes.length; i++) {
    let changed = false;
    for (const [s, ts] of next) for (const t of ts) {
      const r = rank.get(s) + 1;
      if (r > rank.get(t) && r < g.nodes.length) { rank.set(t, r); changed = true; }
    }
    if (!changed) break;
  }
  const pos = {};
  let top = 0;
  for (const ns of [...new Set(g.nodes.map((n) => n.namespace))].sort()) {
    const cols = new Map();
    for (const n of g.nodes.filter((x) => x.namespace === ns)) {
      const r = rank.get(n.id);
      if (!cols.has(r)) cols.set(r, []);
      cols.get(r).push(n.id);
    }
    let rows = 0;
    for (const [r, ids] of cols) {
      ids.sort().forEach((id, i) => { pos[id] = { x: r * 260, y: top + i * 110 + (r % 2) * 30 }; });
      rows = Math.max(rows, ids.length);
    }
    top += rows * 110 + 90;
  }
  return pos;
}
function render(g) {
  graph = g;
  window.ambitGraph = g;
  const namespaces = [...new Set(g.nodes.map((n) => n.namespace))];
  const els = [];
  for (const ns of namespaces) els.push({ group: "nodes", data: { id: "ns:" + ns, label: ns }, classes: "ns" });
  for (const n of g.nodes)
    els.push({ group: "nodes", data: { id: n.id, label: n.label, kind: n.kind, parent: "ns:" + n.namespace,
      notEnrolled: n.kind === "workload" && !n.enrolled } });
  for (const e of g.edges)
    els.push({ group: "edges", data: { id: e.id, source: e.source, target: e.target, label: edgeLabel(e),
      active: e.rps > 0, failing: e.errorRate > 0, waypoint: e.waypoint, mtls: e.mtls, edge: e } });
  for (const l of g.links || [])
    els.push({ group: "edges", data: { id: "backs:" + l.source + "->" + l.target, source: l.source, target: l.target }, classes: "backs" });
  const key = els.map((x) => x.data.id).sort().join("|");
  cy.batch(() => {
    if (key !== layoutKey) { cy.elements().remove(); cy.add(els); }
    else for (const x of els) cy.getElementById(x.data.id).data(x.data);
  });
  if (key !== layoutKey) {
    layoutKey = key;
    const pos = flowPositions(g);
    cy.layout({ name: "preset", positions: (n) => pos[n.id()], fit: true, padding: 50, animate: false }).run();
    // a small mesh should not fill the screen with two giant nodes
    if (cy.zoom() > 1.5) { cy.zoom(1.5); cy.center(); }
  }
  placeLocks();
  document.body.dataset.edges = String(g.edges.length);
}
function row(k, v, cls = "") { return "<tr><td>" + esc(k) + "</td><td class='" + cls + "'>" + v + "</td></tr>"; }
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }
async function showWorkload(node) {
  const d = document.getElementById("details");
  if (node.kind !== "workload" && node.kind !== "waypoint") { d.innerHTML = "<b>" + esc(node.id) + "</b> <span class='muted'>(" + node.kind + ")</span>"; return; }
  const r = await fetch("/api/workload?ns=" + encodeURIComponent(node.namespace) + "&name=" + encodeURIComponent(node.label));
  if (!r.ok) { d.textContent = node.id + ": not in the model"; return; }
  const w = await r.json();
  let h = "<b>" + esc(w.namespace + "/" + w.name) + "</b><table>";
  for (const p of w.pods) {
    h += row("pod", esc(p.name)) + row("node", esc(p.node)) + row("identity", esc(p.identity)) +
      (node.kind === "waypoint"
        ? row("enrolment", "waypoint: terminates and originates HBONE itself", "ok")
        : row("enrolment", p.enrolled ? "captured (HBONE)" : "not captured", p.enrolled ? "ok" : "bad")) +
      row("mTLS mode", esc(p.mtlsMode)) + row("healthy", String(p.healthy), p.healthy ? "ok" : "bad") +
      (p.certificate
        ? row("certificate", "expires " + esc(p.certificate.expiresAt.replace(/[.][0-9]+Z$/, "Z")) + " (in " + fmt(p.certificate.secondsLeft / 3600) + " h)",
            p.certificate.secondsLeft > 3600 ? "ok" : "bad")
        : row("certificate", p.enrolled ? "not reported by its ztunnel yet" : "none (not enrolled)", "muted"));
  }
  for (const r of w.routes) h += row("route", esc(r.kind + " " + r.name));
  for (const s of w.services) h += row("service", esc(s.hostname + " " + s.vips.join(",")));
  for (const x of w.waypoints) h += row("waypoint", esc(JSON.stringify(x)));
  for (const p of w.policies) h += row("policy", esc(p.action.toUpperCase() + " " + p.name + " (" + p.scope + ", " + p.rules + " rules" + (p.dryRun ? ", dry-run" : "") + ")"));
  for (const c of w.conditions) {
    const conds = ((c.status && (c.status.conditions || (c.status.parents || []).flatMap((p) => p.conditions || []))) || []);
    h += row(c.kind, esc(c.name) + ": " + conds.map((k) => "<span class='" + (k.status === "True" ? "ok" : "bad") + "'>" + esc(k.type + "=" + k.status + (k.reason ? " (" + k.reason + ")" : "")) + "</span>").join(", "));
  }
  for (const e of w.rejected) h += row("rejected", esc(e.message + (e.field ? " [" + e.field + "]" : "")), "bad");
  d.innerHTML = h + "</table>";
}
function showEdge(e) {
  document.getElementById("details").innerHTML = "<b>" + esc(e.source + " → " + e.target) + "</b><table>" +
    row("rate", fmt(e.rps) + (e.protocol === "http" ? " req/s" : " conn/s")) +
    row("errors", fmt(e.errorRate * 100) + "% now, " + e.totalErrors + " total", e.errorRate > 0 ? "bad" : "") +
    row("p99", e.p99Ms === undefined ? "—" : fmt(e.p99Ms) + " ms") + row("bytes", bytes(e.bps)) +
    row("total", String(e.totalRequests)) +
    (e.totalDenied ? row("denied", e.totalDenied + " connections (L4 authorization)", "bad") : "") + row("mTLS", e.mtls ? "mutual TLS" : "none", e.mtls ? "ok" : "bad") +
    row("waypoint", e.waypoint ? "◆ in the path" : "no") + "</table>";
}
cy.on("tap", "node", (ev) => { const id = ev.target.id(); const n = graph.nodes.find((x) => x.id === id); if (n) showWorkload(n); });
cy.on("tap", "edge", (ev) => { const e = ev.target.data("edge"); if (e) showEdge(e); });
async function health() {
  try {
    const h = await (await fetch("/api/health")).json();
    let s = "<table>";
    s += row("proxies", h.proxies.length + " connected, " + h.proxies.filter((p) => !p.inSync).length + " not in sync");
    for (const n of h.nacks) s += row("NACK", esc(n.proxy + " " + n.typeUrl.split("/").pop() + ": " + (n.lastNack ? JSON.stringify(n.lastNack) : n.nacks)), "bad");
    for (const e of h.rejected) s += row("rejected", esc(e.object.kind + " " + (e.object.namespace ? e.object.namespace + "/" : "") + e.object.name + (e.field ? " field " + e.field : "") + ": " + e.message), "bad");
    for (const t of h.targets) if (!t.ok) s += row("scrape", esc(t.url + ": " + t.error), "muted");
    if (!h.nacks.length && !h.rejected.length) s += row("config", "no NACKs, no rejected objects", "ok");
    document.getElementById("health").innerHTML = s + "</table>";
  } catch { /* controller away: retried */ }
}
const conn = document.getElementById("conn");
function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("graph", (m) => { conn.textContent = "live"; conn.className = "live"; render(JSON.parse(m.data)); });
  es.onerror = () => {
    conn.textContent = "reconnecting…"; conn.className = "";
    // EventSource retries by itself, except after an HTTP error: then start over.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}
connect();
health();
setInterval(health, 5000);
</script>
</body>
</html>
`;

export const DASHBOARD_PAGE = PAGE.replaceAll("LOCK_SRC", LOCK_SRC);
