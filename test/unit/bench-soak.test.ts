// npm run soak's report: the least-squares slope, the RSS slope after
// warm-up per ztunnel, the chart and the BENCHMARKS.md section (pure).
import t from "tap";
import {
  renderSoakChart,
  renderSoakSection,
  rssSlopes,
  type SoakResult,
  slope,
} from "../../bench/soak-report.js";

function result(rss: (minute: number) => number, minutes = 20): SoakResult {
  return {
    startedAt: "2026-11-26T12:00:00.000Z",
    finishedAt: "2026-11-26T12:20:00.000Z",
    plannedMinutes: 60,
    minutes,
    rate: 1000,
    connections: 64,
    exchangesPerConnection: 100,
    warmupMinutes: 5,
    samples: Array.from({ length: minutes + 1 }, (_, m) => ({
      minute: m,
      rssMB: { "node-1": rss(m), "node-2": 80 },
      fds: { "node-1": 40, "node-2": 40 },
      requests: 60_000,
      errors: 0,
      p99Ms: 2,
    })),
    totals: { requests: 1_200_000, errors: 0, connectionsOpened: 12_000, connectErrors: 0 },
    loadAverage: [20.5, 21, 22],
    cores: 2,
  };
}

t.test("slope is the least-squares fit", async (t) => {
  t.equal(slope([]), 0);
  t.equal(slope([[1, 5]]), 0);
  t.equal(
    slope([
      [0, 1],
      [1, 3],
      [2, 5],
    ]),
    2,
  );
  t.equal(
    slope([
      [0, 4],
      [1, 4],
      [2, 4],
    ]),
    0,
  );
});

t.test("RSS slope per hour leaves the warm-up out", async (t) => {
  // Steep during warm-up (minutes 0-4), then 0.1 MB per minute: 6 MB per hour.
  const r = result((m) => (m < 5 ? 50 + m * 10 : 100 + (m - 5) * 0.1));
  const s = rssSlopes(r);
  t.ok(Math.abs((s["node-1"] ?? 0) - 6) < 1e-9, `node-1 ${s["node-1"]}`);
  t.equal(s["node-2"], 0);
});

t.test("the section labels a short run and shows the figures", async (t) => {
  const md = renderSoakSection(result(() => 90));
  t.match(md, /a 20-minute run \(shorter than the hour/);
  t.match(md, /\| ztunnel node-1 \| 90\.0 \| 90\.0 \| 90\.0 \| 0\.00 \| 0\.00 \| 40 → 40 \|/);
  t.match(md, /20\.5, 21\.0, 22\.0 on 2 cores/);
  t.match(renderSoakSection(undefined), /Not run yet/);
  const svg = renderSoakChart(result(() => 90));
  t.match(svg, /^<svg /);
  t.equal((svg.match(/<polyline /g) ?? []).length, 4, "RSS and fds lines for each ztunnel");
});
