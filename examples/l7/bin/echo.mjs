// A small HTTP server for the L7 examples: answers with its name/version and
// what it saw, and logs every request (so a mirror's copies show up in its log).
import http from "node:http";

const port = Number(process.env.PORT || 8080);
const name = process.env.APP || "echo";
const version = process.env.VERSION || "v1";
let n = 0;

http
  .createServer((req, res) => {
    if (req.url === "/healthz") return res.end("ok\n");
    n++;
    const shadow = String(req.headers.host || "").includes("-shadow");
    console.log(
      `${new Date().toISOString()} #${n} ${req.method} ${req.url} host=${req.headers.host}${shadow ? " (mirrored copy)" : ""}`,
    );
    res.setHeader("content-type", "application/json");
    res.setHeader("x-served-by", `${name}-${version}`);
    res.end(`${JSON.stringify({ app: name, version, path: req.url, pod: process.env.POD_NAME, n })}\n`);
  })
  .listen(port, () => console.log(`${name} ${version} listening on :${port}`));
