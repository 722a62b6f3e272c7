// Raw HTTP/2 for fuzzing the HBONE server: frames built byte by byte (so a
// length field may lie), a minimal HPACK encoder (literals only, which any
// decoder must accept) and a reader that reports what the server answered on
// stream 1.
import type { Duplex } from "node:stream";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

export const END_STREAM = 0x1;
export const END_HEADERS = 0x4;

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
  /** The 24-bit length field as sent; default the payload's real length. */
  lengthField?: number;
}

export function encodeFrame(f: RawFrame): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE((f.lengthField ?? f.payload.length) & 0xffffff, 0, 3);
  head.writeUInt8(f.type & 0xff, 3);
  head.writeUInt8(f.flags & 0xff, 4);
  head.writeUInt32BE(f.streamId >>> 0, 5);
  return Buffer.concat([head, Buffer.from(f.payload)]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByteFlags: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByteFlags | value];
  const out = [firstByteFlags | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function hpackString(b: Uint8Array): number[] {
  return [...hpackInt(b.length, 7, 0), ...b];
}

/** A header block of literal fields without indexing, new names (no Huffman, no table state). */
export function hpackLiterals(headers: [string | Uint8Array, string | Uint8Array][]): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    const n = typeof name === "string" ? Buffer.from(name, "latin1") : name;
    const v = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    out.push(0x00, ...hpackString(n), ...hpackString(v));
  }
  return Buffer.from(out);
}

/** Client preface, empty SETTINGS, and a CONNECT to `authority` on stream 1. */
export function connectRequest(authority: Uint8Array, extra: [string, string][] = []): Buffer {
  const block = hpackLiterals([[":method", "CONNECT"], [":authority", authority], ...extra]);
  return Buffer.concat([
    PREFACE,
    encodeFrame({ type: FrameType.SETTINGS, flags: 0, streamId: 0, payload: new Uint8Array(0) }),
    encodeFrame({ type: FrameType.HEADERS, flags: END_HEADERS, streamId: 1, payload: block }),
  ]);
}

export type Stream1Outcome =
  | { kind: "status"; status: number | "other" }
  | { kind: "reset"; code: number }
  | { kind: "goaway"; code: number }
  | { kind: "closed" };

/**
 * Reads server frames until stream 1 gets a response, a reset, the session a
 * GOAWAY, or the socket closes. Answers SETTINGS with an ACK so that nghttp2
 * treats us as a well-behaved peer. The :status is read from the first
 * header field when it is a static-table index (200 → 0x88, 400 → 0x8c, as
 * nghttp2 encodes them); anything else is "other".
 */
export function readStream1(sock: Duplex): Promise<Stream1Outcome> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (o: Stream1Outcome) => {
      if (done) return;
      done = true;
      sock.off("data", onData);
      resolve(o);
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) return;
        const type = buf[3]!;
        const flags = buf[4]!;
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === FrameType.SETTINGS && (flags & 1) === 0) {
          sock.write(
            encodeFrame({ type: FrameType.SETTINGS, flags: 1, streamId: 0, payload: new Uint8Array(0) }),
          );
        } else if (type === FrameType.HEADERS && stream === 1) {
          let off = 0;
          if (flags & 0x8) off += 1; // PADDED
          if (flags & 0x20) off += 5; // PRIORITY
          const first = payload[off];
          finish({ kind: "status", status: first === 0x88 ? 200 : first === 0x8c ? 400 : "other" });
        } else if (type === FrameType.RST_STREAM && stream === 1) {
          finish({ kind: "reset", code: payload.length >= 4 ? payload.readUInt32BE(0) : -1 });
        } else if (type === FrameType.GOAWAY) {
          finish({ kind: "goaway", code: payload.length >= 8 ? payload.readUInt32BE(4) : -1 });
        }
      }
    };
    sock.on("data", onData);
    sock.once("close", () => finish({ kind: "closed" }));
  });
}
