// One request/ack exchange with the node agent over its Unix socket.
import net from "node:net";
import { decodeResponse, encodeRequest, FrameReader, frame, type WireAck, type WireRequest } from "./wire.js";

/** The agent is not there: no socket file, or nobody listening on it (ztunnel not running). */
export const AGENT_ABSENT = "absent" as const;

export type AgentReply = WireAck | typeof AGENT_ABSENT;

export class AgentExchangeError extends Error {
  constructor(
    message: string,
    readonly reason: "timeout" | "closed" | "protocol" | "io",
  ) {
    super(message);
    this.name = "AgentExchangeError";
  }
}

/**
 * Sends `req`, waits for the ack. Resolves AGENT_ABSENT when the socket does
 * not exist or refuses the connection; rejects with AgentExchangeError when
 * the agent was reached but gave no valid answer within `timeoutMs`.
 */
export function exchange(socketPath: string, req: WireRequest, timeoutMs: number): Promise<AgentReply> {
  return new Promise((resolve, reject) => {
    let connected = false;
    let done = false;
    const reader = new FrameReader();
    const sock = net.connect({ path: socketPath });
    const finish = (err: Error | undefined, value?: AgentReply) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(
      () =>
        finish(
          connected
            ? new AgentExchangeError(
                `node agent at ${socketPath} did not answer within ${timeoutMs} ms`,
                "timeout",
              )
            : new AgentExchangeError(
                `node agent at ${socketPath}: connect timed out after ${timeoutMs} ms`,
                "timeout",
              ),
        ),
      timeoutMs,
    );
    sock.on("connect", () => {
      connected = true;
      sock.write(frame(encodeRequest(req)));
    });
    sock.on("data", (chunk) => {
      try {
        const [msg] = reader.push(chunk);
        if (msg) finish(undefined, decodeResponse(msg));
      } catch (e) {
        finish(
          new AgentExchangeError(
            `node agent at ${socketPath}: bad response: ${(e as Error).message}`,
            "protocol",
          ),
        );
      }
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (!connected && (e.code === "ENOENT" || e.code === "ECONNREFUSED")) finish(undefined, AGENT_ABSENT);
      else finish(new AgentExchangeError(`node agent at ${socketPath}: ${e.message}`, "io"));
    });
    sock.on("close", () =>
      finish(
        new AgentExchangeError(
          `node agent at ${socketPath} closed the connection without an answer`,
          "closed",
        ),
      ),
    );
  });
}
