// Calls each TARGETS url (comma-separated) every INTERVAL_MS and prints, every
// 20 rounds, a tally per target: status codes and, for 200s, which version
// answered. Shows the canary split, the fault, the rate limit and the denial.
import http from "node:http";

const targets = (process.env.TARGETS || "http://reviews.shop/").split(",").filter(Boolean);
const every = Number(process.env.INTERVAL_MS || 500);
const tallies = new Map(targets.map((t) => [t, new Map()]));
let rounds = 0;

function bump(target, key) {
  const m = tallies.get(target);
  m.set(key, (m.get(key) || 0) + 1);
}

function call(url) {
  return new Promise((resolve) => {
    const started = Date.now();
    const req = http.get(url, { agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        let version = "";
        try {
          version = JSON.parse(body).version || "";
        } catch {}
        const slow = Date.now() - started > 900 ? " slow" : "";
        bump(url, `${res.statusCode}${version ? ` ${version}` : ""}${slow}`);
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => {
      bump(url, `error ${e.message}`);
      resolve();
    });
  });
}

async function round() {
  await Promise.all(targets.map(call));
  if (++rounds % 20 === 0) {
    for (const [t, m] of tallies) {
      const parts = [...m.entries()].sort().map(([k, v]) => `${k}: ${v}`);
      console.log(`${new Date().toISOString()} ${t} -> ${parts.join(", ")}`);
      m.clear();
    }
  }
}

setInterval(round, every);
