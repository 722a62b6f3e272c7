// A small grouped bar chart in SVG (no dependency): groups along x (e.g.
// percentiles), one bar per series (peer) in each group, a y axis with round
// ticks, a legend. Missing values leave a gap.

export interface BarChart {
  title: string;
  unit: string;
  groups: string[];
  series: { name: string; values: (number | undefined)[]; color?: string }[];
  /** Logarithmic y axis (for latency percentiles spanning decades). */
  log?: boolean;
}

/** Decades covering the positive values, and ticks at 1, 2, 5 × 10^k inside them. */
export function logScale(values: number[]): { lo: number; hi: number; ticks: number[] } {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  if (pos.length === 0) return { lo: 0, hi: 1, ticks: [1, 10] };
  const lo = Math.floor(Math.log10(Math.min(...pos)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...pos))));
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of [1, 2, 5]) if (e < hi || m === 1) ticks.push(m * 10 ** e);
  return { lo, hi, ticks };
}

export const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948"];

export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c] ?? c,
  );
}

/** A "nice" axis maximum and step (1, 2, 2.5 or 5 × 10^k) for a data maximum. */
export function niceScale(max: number, ticks = 5): { max: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { max: 1, step: 0.2 };
  const raw = max / ticks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * pow >= raw) ?? 10) * pow;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function fmt(v: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

export function renderBarChart(c: BarChart): string {
  const W = 760;
  const H = 380;
  const m = { top: 44, right: 16, bottom: 70, left: 64 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  const all = c.series
    .flatMap((s) => s.values)
    .filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const { max, step } = niceScale(Math.max(0, ...all));
  const ls = logScale(all);
  const y = c.log
    ? (v: number) =>
        m.top + plotH - ((Math.log10(Math.max(v, 10 ** ls.lo)) - ls.lo) / (ls.hi - ls.lo)) * plotH
    : (v: number) => m.top + plotH - (v / max) * plotH;
  const ticks: number[] = [];
  if (c.log) ticks.push(...ls.ticks);
  else for (let v = 0; v <= max + step / 2; v += step) ticks.push(v);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(c.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(c.title)}</text>`,
  );
  for (const v of ticks) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${m.left}" x2="${W - m.right}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${m.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${Number(v.toPrecision(6))}</text>`,
    );
  }
  out.push(
    `<text transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(c.log ? `${c.unit} (log scale)` : c.unit)}</text>`,
  );
  const groupW = plotW / Math.max(1, c.groups.length);
  const barW = (groupW * 0.8) / Math.max(1, c.series.length);
  c.groups.forEach((g, gi) => {
    const gx = m.left + gi * groupW;
    out.push(
      `<text x="${(gx + groupW / 2).toFixed(1)}" y="${m.top + plotH + 16}" text-anchor="middle">${escapeXml(g)}</text>`,
    );
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      if (typeof v !== "number" || !Number.isFinite(v)) return;
      const x = gx + groupW * 0.1 + si * barW;
      const top = y(v);
      const color = s.color ?? COLORS[si % COLORS.length];
      out.push(
        `<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(m.top + plotH - top).toFixed(1)}" fill="${color}"><title>${escapeXml(`${s.name} ${g}: ${fmt(v)} ${c.unit}`)}</title></rect>`,
      );
      if (barW >= 26) {
        out.push(
          `<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="10">${fmt(v)}</text>`,
        );
      }
    });
  });
  out.push(
    `<line x1="${m.left}" x2="${W - m.right}" y1="${m.top + plotH}" y2="${m.top + plotH}" stroke="#333"/>`,
  );
  // Legend, in rows under the axis labels.
  let lx = m.left;
  let ly = m.top + plotH + 38;
  c.series.forEach((s, si) => {
    const w = 22 + s.name.length * 7;
    if (lx + w > W - m.right) {
      lx = m.left;
      ly += 16;
    }
    out.push(
      `<rect x="${lx}" y="${ly - 9}" width="12" height="12" fill="${s.color ?? COLORS[si % COLORS.length]}"/>`,
      `<text x="${lx + 16}" y="${ly + 1}">${escapeXml(s.name)}</text>`,
    );
    lx += w;
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
