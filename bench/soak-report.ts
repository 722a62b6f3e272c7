// `npm run soak`'s result (bench/results/soak.json), its chart and its section
// of BENCHMARKS.md: RSS and open descriptors of each ztunnel sampled each
// minute under a constant load with connection churn, and the RSS slope after
// warm-up (least squares), which should be flat. Pure functions.
import { COLORS, escapeXml, niceScale } from "./svg.js";

export interface SoakSample {
  /** Minutes since the load started. */
  minute: number;
  rssMB: Record<string, number>;
  fds: Record<string, number>;
  /** Exchanges and errors in the minute before the sample. */
  requests: number;
  errors: number;
  p99Ms: number;
}

export interface SoakResult {
  startedAt: string;
  finishedAt: string;
  /** What was asked for (an hour by default) and what ran. */
  plannedMinutes: number;
  minutes: number;
  rate: number;
  connections: number;
  exchangesPerConnection: number;
  /** Samples before this minute are warm-up, left out of the slope. */
  warmupMinutes: number;
  samples: SoakSample[];
  totals: { requests: number; errors: number; connectionsOpened: number; connectErrors: number };
  loadAverage: number[];
  cores: number;
}

export const SOAK_CHART = "bench/results/soak.svg";

/** Least-squares slope of y over x (units of y per unit of x); 0 for fewer than two points. */
export function slope(points: readonly [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** RSS slope per ztunnel from minute `from` (default: the end of warm-up), in MB per hour. */
export function rssSlopes(r: SoakResult, from = r.warmupMinutes): Record<string, number> {
  const nodes = Object.keys(r.samples[0]?.rssMB ?? {});
  const after = r.samples.filter((s) => s.minute >= from);
  return Object.fromEntries(nodes.map((n) => [n, slope(after.map((s) => [s.minute, s.rssMB[n] ?? 0])) * 60]));
}

/** A line chart of each ztunnel's RSS (solid) and open descriptors (dashed, right axis) by minute. */
export function renderSoakChart(r: SoakResult): string {
  const W = 760;
  const H = 380;
  const m = { top: 44, right: 64, bottom: 56, left: 64 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const nodes = Object.keys(r.samples[0]?.rssMB ?? {});
  const maxMin = Math.max(1, ...r.samples.map((s) => s.minute));
  const rss = niceScale(Math.max(1, ...r.samples.flatMap((s) => Object.values(s.rssMB))));
  const fds = niceScale(Math.max(1, ...r.samples.flatMap((s) => Object.values(s.fds))));
  const x = (min: number) => m.left + (min / maxMin) * pw;
  const yR = (v: number) => m.top + ph - (v / rss.max) * ph;
  const yF = (v: number) => m.top + ph - (v / fds.max) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15">${escapeXml(
      `Soak: ztunnel RSS and open descriptors, ${r.rate} rps with churn, ${r.minutes.toFixed(0)} min`,
    )}</text>`,
  ];
  for (let v = 0; v <= rss.max + 1e-9; v += rss.step) {
    out.push(
      `<line x1="${m.left}" x2="${m.left + pw}" y1="${yR(v)}" y2="${yR(v)}" stroke="#ddd"/>`,
      `<text x="${m.left - 6}" y="${yR(v) + 4}" text-anchor="end">${Number(v.toFixed(1))}</text>`,
    );
  }
  for (let v = 0; v <= fds.max + 1e-9; v += fds.step)
    out.push(`<text x="${m.left + pw + 6}" y="${yF(v) + 4}">${Number(v.toFixed(0))}</text>`);
  const xStep = niceScale(maxMin, 6).step;
  for (let v = 0; v <= maxMin + 1e-9; v += xStep)
    out.push(`<text x="${x(v)}" y="${m.top + ph + 18}" text-anchor="middle">${Number(v.toFixed(1))}</text>`);
  out.push(
    `<text x="${m.left + pw / 2}" y="${H - 22}" text-anchor="middle">minutes</text>`,
    `<text x="16" y="${m.top + ph / 2}" transform="rotate(-90 16 ${m.top + ph / 2})" text-anchor="middle">RSS MB (solid)</text>`,
    `<text x="${W - 12}" y="${m.top + ph / 2}" transform="rotate(90 ${W - 12} ${m.top + ph / 2})" text-anchor="middle">open fds (dashed)</text>`,
    `<line x1="${x(r.warmupMinutes)}" x2="${x(r.warmupMinutes)}" y1="${m.top}" y2="${m.top + ph}" stroke="#999" stroke-dasharray="2 3"/>`,
  );
  nodes.forEach((n, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const line = (y: (s: SoakSample) => number) => r.samples.map((s) => `${x(s.minute)},${y(s)}`).join(" ");
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${line((s) => yR(s.rssMB[n] ?? 0))}"/>`,
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" stroke-dasharray="5 4" points="${line((s) => yF(s.fds[n] ?? 0))}"/>`,
      `<rect x="${m.left + 10 + i * 150}" y="${m.top + 6}" width="12" height="12" fill="${color}"/>`,
      `<text x="${m.left + 28 + i * 150}" y="${m.top + 16}">${escapeXml(`ztunnel ${n}`)}</text>`,
    );
  });
  out.push("</svg>\n");
  return out.join("\n");
}

/** The Soak section of BENCHMARKS.md. */
export function renderSoakSection(r: SoakResult | undefined): string {
  if (!r) return "## Soak\n\nNot run yet: `npm run soak` (an hour; not part of CI) writes this section.\n";
  const slopes = rssSlopes(r);
  const lateSlopes = rssSlopes(r, r.minutes / 2);
  const nodes = Object.keys(slopes);
  const first = r.samples.find((s) => s.minute >= r.warmupMinutes) ?? r.samples[0];
  const last = r.samples[r.samples.length - 1];
  const label =
    r.minutes + 0.5 < r.plannedMinutes
      ? `a ${r.minutes.toFixed(0)}-minute run (shorter than the hour \`npm run soak\` runs by default)`
      : `a ${r.minutes.toFixed(0)}-minute run`;
  const rows = nodes.map(
    (n) =>
      `| ztunnel ${n} | ${first?.rssMB[n]?.toFixed(1) ?? "–"} | ${last?.rssMB[n]?.toFixed(1) ?? "–"} | ${Math.max(...r.samples.map((s) => s.rssMB[n] ?? 0)).toFixed(1)} | ${(slopes[n] ?? 0).toFixed(2)} | ${(lateSlopes[n] ?? 0).toFixed(2)} | ${first?.fds[n] ?? "–"} → ${last?.fds[n] ?? "–"} |`,
  );
  const perSecond = r.samples.filter((s) => s.minute > 0).map((s) => s.requests / 60);
  const rateRange = perSecond.length
    ? `${Math.min(...perSecond).toFixed(0)}–${Math.max(...perSecond).toFixed(0)}/s per minute`
    : "–";
  const errRate = r.totals.requests ? (100 * r.totals.errors) / (r.totals.requests + r.totals.errors) : 0;
  return `## Soak

\`npm run soak\` (not part of CI): ${label}, ${r.startedAt.slice(0, 16).replace("T", " ")} UTC. The
benchmark's topology, ambit's two ztunnels as their own processes, a TCP echo server in the server
pod; the client pod sends ${r.rate} exchanges per second (64 bytes each way) over ${r.connections}
connections, each replaced after ${r.exchangesPerConnection} exchanges (${((r.rate / r.exchangesPerConnection) * 60).toFixed(0)} new tunnelled
connections a minute). Each ztunnel's RSS and open descriptors are sampled every minute; the slope is
a least-squares fit after ${r.warmupMinutes} minutes of warm-up. Load average at the start:
${r.loadAverage.map((l) => l.toFixed(1)).join(", ")} on ${r.cores} cores (other work shared the machine).

![soak: RSS and descriptors per minute](${SOAK_CHART})

| process | RSS MB after warm-up | RSS MB at the end | RSS MB max | slope MB/hour after warm-up | slope MB/hour, second half | open fds |
|---|---:|---:|---:|---:|---:|---|
${rows.join("\n")}

Exchanges: ${r.totals.requests.toLocaleString("en-US")} (${(r.totals.requests / (r.minutes * 60)).toFixed(0)}/s achieved on average, ${rateRange}), errors ${r.totals.errors} (${errRate.toFixed(3)}%),
connections opened ${r.totals.connectionsOpened.toLocaleString("en-US")}, connect errors ${r.totals.connectErrors}.
`;
}
