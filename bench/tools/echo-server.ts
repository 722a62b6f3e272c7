// Run inside the server pod: a TCP echo server on PORT (every address) for the
// soak test and `npm run soak`, so that neither needs fortio. Prints
// "listening" once it is, and exits on SIGTERM.
//   node echo-server.js PORT
import { createServer } from "node:net";

const port = Number(process.argv[2] ?? 8078);
const server = createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
  s.on("error", () => s.destroy());
  s.pipe(s);
});
server.maxConnections = 100_000;
server.listen({ port, backlog: 4096 }, () => process.stdout.write("listening\n"));
process.once("SIGTERM", () => process.exit(0));
