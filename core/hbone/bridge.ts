// Splices a TCP socket and an HBONE (HTTP/2 CONNECT) stream, both ways:
// data with a lean forwarder (backpressure, nothing allocated per chunk,
// two listeners per direction instead of pipe()'s seven), half-close
// as TCP FIN <-> END_STREAM, and resets as TCP RST <-> RST_STREAM
// (CONNECT_ERROR, RFC 9113 section 8.5). Calls done once, after both sides
// have closed, with why it ended; byte counts are read from the socket then.
import http2, { type Http2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { Readable, Writable } from "node:stream";

export type CloseReason =
  /** Both sides finished with FIN/END_STREAM. */
  | "eof"
  /** The TCP side reset or failed. */
  | "socket_reset"
  /** The HTTP/2 side reset the stream or the session went away. */
  | "stream_reset"
  /** bridgeSockets: the upstream socket reset or failed. */
  | "upstream_reset"
  /** Our own decision (timeout, drain, shutdown). */
  | "local_close";

export interface BridgeEnd {
  reason: CloseReason;
  /** Error code or RST_STREAM code, when there was one. */
  detail?: string;
}

const { NGHTTP2_CONNECT_ERROR, NGHTTP2_NO_ERROR } = http2.constants;

/**
 * RST_STREAM with `code`, and nothing before it. Node's stream.close(code)
 * on a stream whose writable side is open first ends it (an END_STREAM the
 * peer would take for a clean half-close, then a FIN), so mark the writable
 * side as ending first; destroy(err) is the fallback (INTERNAL_ERROR).
 */
export function resetStream(stream: Http2Stream, code: number = NGHTTP2_CONNECT_ERROR): void {
  if (stream.closed || stream.destroyed) return;
  const ws = (stream as unknown as { _writableState?: { ending: boolean } })._writableState;
  if (ws) {
    ws.ending = true;
    stream.close(code);
  } else stream.destroy(new Error("reset"));
}

export interface Bridge {
  /** Ends both sides with resets (e.g. drain deadline). */
  abort(): void;
}

/**
 * One tunnel's splice state, found by the shared listeners below through a
 * symbol property on the socket and the stream. Idle tunnels are the common
 * case (10,000 per ztunnel): one object per tunnel instead of a closure per
 * listener and the contexts they share (about 1.2 KB per tunnel per side).
 */
class Splice implements Bridge {
  end: BridgeEnd | undefined = undefined;
  socketClosed: boolean;
  streamClosed: boolean;
  reported = false;

  constructor(
    readonly socket: Socket,
    readonly stream: Http2Stream,
    readonly done: (end: BridgeEnd) => void,
  ) {
    this.socketClosed = socket.destroyed;
    this.streamClosed = stream.closed || stream.destroyed;
  }

  note(e: BridgeEnd): void {
    if (!this.end) this.end = e;
  }

  finish(): void {
    if (this.socketClosed && this.streamClosed && !this.reported) {
      this.reported = true;
      this.done(this.end ?? { reason: "eof" });
    }
  }

  abort(): void {
    this.note({ reason: "local_close" });
    resetStream(this.stream);
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }
}

const kSplice = Symbol("ambit.splice");
type Spliced = { [kSplice]: Splice };

function spliceOf(emitter: unknown): Splice {
  return (emitter as Spliced)[kSplice];
}

// Shared listeners: `this` is the emitter (socket or stream) they were added to.
function onSocketError(this: Socket, err: Error & { code?: string }): void {
  spliceOf(this).note({ reason: "socket_reset", detail: err.code ?? err.message });
}

function onSocketClose(this: Socket, hadError: boolean): void {
  const sp = spliceOf(this);
  const { socket, stream } = sp;
  sp.socketClosed = true;
  if (hadError || !socket.readableEnded) {
    sp.note({ reason: "socket_reset", detail: sp.end?.detail });
    resetStream(stream);
  } else if (!stream.closed && !stream.readableEnded) {
    // Our side is fully closed but the peer keeps sending: nobody can read it.
    resetStream(stream);
  }
  sp.finish();
}

function onStreamError(this: Http2Stream, err: Error & { code?: string }): void {
  spliceOf(this).note({ reason: "stream_reset", detail: err.code ?? err.message });
}

function onStreamClose(this: Http2Stream): void {
  const sp = spliceOf(this);
  const { socket, stream } = sp;
  sp.streamClosed = true;
  const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
  if (code !== NGHTTP2_NO_ERROR || !stream.readableEnded) {
    sp.note({ reason: "stream_reset", detail: `rst ${code}` });
    if (!socket.destroyed) socket.resetAndDestroy();
  }
  sp.finish();
}

function onSocketEnd(this: Socket): void {
  spliceOf(this).stream.end();
}

// Node ends the readable side of a stream that was reset, too: only a real
// END_STREAM may become a FIN, or the peer would see a clean close before
// (instead of) the RST.
function onStreamEnd(this: Http2Stream): void {
  if (!this.rstCode) spliceOf(this).socket.end();
}

export function bridge(socket: Socket, stream: Http2Stream, done: (end: BridgeEnd) => void): Bridge {
  // The socket must survive a FIN from its peer so the other direction can
  // finish: that is TCP half-close.
  socket.allowHalfOpen = true;
  socket.setNoDelay(true);
  const sp = new Splice(socket, stream, done);
  (socket as unknown as Spliced)[kSplice] = sp;
  (stream as unknown as Spliced)[kSplice] = sp;
  socket.on("error", onSocketError);
  // `on`, not `once`, for events that fire once anyway (close, end): `once`
  // keeps a wrapper object and a bound function per listener for the
  // tunnel's whole life (10,000 idle tunnels: about 5 MB per ztunnel).
  socket.on("close", onSocketClose);
  stream.on("error", onStreamError);
  stream.on("close", onStreamClose);
  // Into the HTTP/2 stream nothing to coalesce: the session frames and sends
  // everything its streams were given in one iteration as one TLS write.
  forward(socket, stream, false, STREAM_PAUSE_BYTES);
  forward(stream, socket);
  socket.on("end", onSocketEnd);
  stream.on("end", onStreamEnd);
  if (sp.socketClosed || sp.streamClosed) {
    // One side was already gone before we spliced.
    if (!socket.destroyed) socket.resetAndDestroy();
    resetStream(stream);
  }
  return sp;
}

/**
 * Splices two TCP sockets (passthrough and plaintext paths): FIN follows FIN,
 * a reset or failure on one side resets the other. `a` is the downstream
 * (its resets read "socket_reset"), `b` the upstream ("upstream_reset").
 */
export function bridgeSockets(a: Socket, b: Socket, done: (end: BridgeEnd) => void): Bridge {
  a.allowHalfOpen = true;
  b.allowHalfOpen = true;
  let end: BridgeEnd | undefined;
  let open = 2;
  const note = (e: BridgeEnd) => {
    if (!end) end = e;
  };
  const wire = (s: Socket, other: Socket, reason: CloseReason) => {
    s.on("error", (err: Error & { code?: string }) => note({ reason, detail: err.code ?? err.message }));
    s.on("close", (hadError: boolean) => {
      if (hadError || !s.readableEnded) {
        note({ reason });
        if (!other.destroyed) other.resetAndDestroy();
      }
      if (--open === 0) done(end ?? { reason: "eof" });
    });
  };
  wire(a, b, "socket_reset");
  wire(b, a, "upstream_reset");
  forward(a, b);
  forward(b, a);
  a.on("end", () => b.end());
  b.on("end", () => a.end());
  return {
    abort() {
      note({ reason: "local_close" });
      if (!a.destroyed) a.resetAndDestroy();
      if (!b.destroyed) b.resetAndDestroy();
    },
  };
}

/**
 * What socket → HTTP/2 stream may buffer before the socket pauses. The
 * stream's writes complete only when the session sends (its check-phase
 * flush), so with the stream's 16 KiB high-water mark every 64 KiB socket
 * read paused the socket (readStop, readStart: 4 epoll_ctl per read) and a
 * bulk transfer moved one read per loop iteration. Up to this much, the
 * reads of one poll phase gather and leave as one larger TLS write; bounded
 * per tunnel, and the peer's flow-control window bounds what is sent.
 */
export const STREAM_PAUSE_BYTES = 1024 * 1024;

/**
 * Destinations corked in this event-loop iteration, uncorked together in its
 * check phase (one setImmediate per iteration that forwarded anything).
 */
const corkedNow: Writable[] = [];
/**
 * A chunk this large is a TLS record's share of a bulk transfer: the rest of
 * that TLS read follows in the same iteration, so even the first is corked.
 */
const BULK_CHUNK_BYTES = 8 * 1024;
/** Bumped at the end of each iteration that forwarded anything. */
let iteration = 0;
let flushScheduled = false;

function corkUntilCheck(dst: Writable): boolean {
  if (dst.destroyed) return false;
  dst.cork();
  corkedNow.push(dst);
  return true;
}

function endIteration(): void {
  flushScheduled = false;
  iteration++;
  for (let i = 0; i < corkedNow.length; i++) {
    const dst = corkedNow[i] as Writable;
    if (!dst.destroyed) dst.uncork();
  }
  corkedNow.length = 0;
}

/**
 * Moves data from src to dst with backpressure: pause src when dst's buffer
 * is full, resume on 'drain'. Ends and errors are the caller's (bridge).
 * Idle tunnels are the common case (10k per ztunnel), so this keeps per-
 * connection state to one object per direction and a shared listener.
 *
 * Write coalescing: an HTTP/2 session emits a DATA frame in one callback per
 * TLS record (16 KiB, and pieces of a few bytes where a frame straddles two
 * records), and Node drains the tick queue after each callback, so chunks of
 * one TLS read arrive in separate ticks. The first chunk of a loop iteration
 * is written at once when small (request/response traffic: one chunk per
 * iteration, nothing delayed, no cork); later chunks of the same iteration,
 * and a first one of BULK_CHUNK_BYTES or more, are corked
 * and leave as one writev in the iteration's check phase, instead of one
 * write syscall each. `coalesce` false: every chunk is written at once.
 * `pauseAtBytes`: src pauses only once dst holds this much (default: at
 * dst's own high-water mark).
 */
export function forward(src: Readable, dst: Writable, coalesce = true, pauseAtBytes = 0): void {
  const f = new Forwarder(src, dst, coalesce, pauseAtBytes);
  (src as unknown as Forwarded)[kForwarder] = f;
  src.on("data", onForwardData);
}

/** One direction's state (a source feeds one forwarder), read by the shared 'data' listener. */
class Forwarder {
  waiting = false;
  corked = false;
  lastIteration = -1;
  gather = false;

  constructor(
    readonly src: Readable,
    readonly dst: Writable,
    readonly coalesce: boolean,
    readonly pauseAtBytes: number,
  ) {}

  /** dst drained: the paused source may flow again. */
  resume(): void {
    this.waiting = false;
    this.src.resume();
  }
}

const kForwarder = Symbol("ambit.forwarder");
type Forwarded = { [kForwarder]: Forwarder };

function onForwardData(this: Readable, chunk: Buffer): void {
  const f = (this as unknown as Forwarded)[kForwarder];
  const dst = f.dst;
  if (f.coalesce) {
    if (f.lastIteration !== iteration) {
      // The first chunk of this iteration.
      f.lastIteration = iteration;
      f.corked = false;
      f.gather = dst.writableLength === 0;
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(endIteration);
      }
      if (chunk.length >= BULK_CHUNK_BYTES) f.corked = corkUntilCheck(dst);
    } else if (!f.corked) f.corked = corkUntilCheck(dst);
  }
  if (dst.write(chunk) || f.waiting || dst.destroyed) return;
  // Corked until the check phase, an iteration's chunks may gather past the
  // high-water mark to leave as one writev, unless dst was already backed
  // up when the iteration began (then backpressure as usual).
  if (f.corked && f.gather) return;
  // A destination allowed to buffer more than its high-water mark (the
  // HTTP/2 stream) keeps the source flowing until then: its 'drain' still
  // comes, write() having returned false.
  if (dst.writableLength < f.pauseAtBytes) return;
  f.waiting = true;
  this.pause();
  // A closure only while backed up, never for an idle tunnel's life.
  dst.once("drain", () => f.resume());
}
