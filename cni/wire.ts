// The plugin's side of the node-agent protocol (core/proto/ambit/cni.proto),
// hand-encoded: importing the protobuf runtime costs ~150 ms, and the plugin
// runs once per pod sandbox on the kubelet's critical path. The node agent
// uses the generated code (ztunnel/node-agent/zds-codec.ts); a unit test
// checks that both agree byte for byte.
//
// Everything under cni/ imports only node: built-ins and other cni/ files, so
// the installer can copy dist/cni/*.js to a node on its own.

/** Frames are at most this long (a pod's request is a few hundred bytes). */
export const MAX_FRAME = 64 * 1024;

export interface WirePod {
  uid: string;
  name: string;
  namespace: string;
}

export type WireRequest =
  | {
      kind: "add";
      pod: WirePod;
      netnsPath: string;
      ips: string[];
      containerId: string;
      interface: string;
    }
  | { kind: "del"; pod: WirePod; containerId: string; netnsPath: string };

export interface WireAck {
  error: string;
  captured: boolean;
}

// ---------- protobuf, the subset these messages use ----------

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

class Writer {
  private readonly parts: Buffer[] = [];
  string(field: number, s: string): this {
    if (s === "") return this; // proto3: defaults are not written
    return this.bytes(field, Buffer.from(s, "utf8"));
  }
  bytes(field: number, b: Buffer): this {
    this.parts.push(Buffer.from([...varint((field << 3) | 2), ...varint(b.length)]), b);
    return this;
  }
  bool(field: number, v: boolean): this {
    if (v) this.parts.push(Buffer.from([...varint(field << 3), 1]));
    return this;
  }
  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function podBytes(p: WirePod): Buffer {
  return new Writer().string(1, p.uid).string(2, p.name).string(3, p.namespace).finish();
}

/** A CniRequest. */
export function encodeRequest(r: WireRequest): Buffer {
  if (r.kind === "add") {
    const w = new Writer().bytes(1, podBytes(r.pod)).string(2, r.netnsPath);
    for (const ip of r.ips) w.string(3, ip);
    const add = w.string(4, r.containerId).string(5, r.interface).finish();
    return new Writer().bytes(1, add).finish();
  }
  const del = new Writer().bytes(1, podBytes(r.pod)).string(2, r.containerId).string(3, r.netnsPath).finish();
  return new Writer().bytes(2, del).finish();
}

/** Calls `onField` for each field of one message; skips what it does not know. */
function readFields(buf: Buffer, onField: (field: number, value: Buffer | number) => void): void {
  let i = 0;
  const readVarint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error("truncated varint");
      const b = buf[i++]!;
      if (shift < 28) result |= (b & 0x7f) << shift;
      else result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new Error("varint too long");
    }
  };
  while (i < buf.length) {
    const tag = readVarint();
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (wireType === 0) onField(field, readVarint());
    else if (wireType === 2) {
      const len = readVarint();
      if (i + len > buf.length) throw new Error("truncated field");
      onField(field, buf.subarray(i, i + len));
      i += len;
    } else if (wireType === 1) i += 8;
    else if (wireType === 5) i += 4;
    else throw new Error(`unsupported wire type ${wireType}`);
    if (i > buf.length) throw new Error("truncated field");
  }
}

/** A CniResponse; throws on a malformed or empty one. */
export function decodeResponse(buf: Buffer): WireAck {
  let ack: WireAck | undefined;
  readFields(buf, (field, value) => {
    if (field !== 1 || typeof value === "number") return;
    const a: WireAck = { error: "", captured: false };
    readFields(value, (f, v) => {
      if (f === 1 && typeof v !== "number") a.error = v.toString("utf8");
      else if (f === 2 && typeof v === "number") a.captured = v !== 0;
    });
    ack = a;
  });
  if (!ack) throw new Error("response carries no ack");
  return ack;
}

// ---------- framing: 4-byte big-endian length, then the message ----------

export function frame(msg: Buffer): Buffer {
  if (msg.length > MAX_FRAME) throw new Error(`message of ${msg.length} bytes exceeds ${MAX_FRAME}`);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(msg.length);
  return Buffer.concat([head, msg]);
}

/** Splits a byte stream into messages. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Feeds bytes; returns the complete messages they finish. Throws on an oversized frame. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      if (this.buf.length < 4) break;
      const len = this.buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw new Error(`frame of ${len} bytes exceeds ${MAX_FRAME}`);
      if (this.buf.length < 4 + len) break;
      out.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
  /** Bytes received but not yet a whole frame. */
  get pending(): number {
    return this.buf.length;
  }
}
