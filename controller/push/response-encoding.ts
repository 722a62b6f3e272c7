// Wire encoding of what the push server sends: resource versions (content
// hashes) and DeltaDiscoveryResponse bytes assembled from Resource messages
// encoded once and shared by every stream.
import { hash } from "node:crypto";
import type { Any } from "@bufbuild/protobuf/wkt";

/**
 * A resource's version: a hash of its content (and aliases, which travel in
 * the Resource beside it), so equal content has equal versions on every
 * controller replica, and an alias change reaches the proxies.
 */
export function resourceVersion(any: Any, aliases: readonly string[] = []): string {
  // The bytes of typeUrl, value and each "\0" + alias, hashed in one call: the same digest as
  // updating a hash object with each in turn, without a hash object per resource (a quarter of
  // publish() for 10,000 pods).
  let size = Buffer.byteLength(any.typeUrl) + any.value.byteLength;
  for (const a of aliases) size += 1 + Buffer.byteLength(a);
  if (scratch.length < size) scratch = Buffer.allocUnsafe(Math.max(size, scratch.length * 2));
  let pos = scratch.write(any.typeUrl, 0, "utf8");
  scratch.set(any.value, pos);
  pos += any.value.byteLength;
  for (const a of aliases) {
    scratch[pos++] = 0;
    pos += scratch.write(a, pos, "utf8");
  }
  return hash("sha256", scratch.subarray(0, pos), "base64url").slice(0, 16);
}

/** Reused by resourceVersion (hashing is synchronous). */
let scratch = Buffer.allocUnsafe(64 * 1024);

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n >>>= 7;
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

// Field tags of DeltaDiscoveryResponse (all length-delimited).
const TAG_SYSTEM_VERSION = (1 << 3) | 2;
const TAG_RESOURCES = (2 << 3) | 2;
const TAG_TYPE_URL = (4 << 3) | 2;
const TAG_NONCE = (5 << 3) | 2;
const TAG_REMOVED = (6 << 3) | 2;

// Field tags of envoy.service.discovery.v3.Resource and google.protobuf.Any.
const TAG_RESOURCE_VERSION = (1 << 3) | 2;
const TAG_RESOURCE_BODY = (2 << 3) | 2;
const TAG_RESOURCE_NAME = (3 << 3) | 2;
const TAG_RESOURCE_ALIASES = (4 << 3) | 2;
const TAG_ANY_TYPE_URL = (1 << 3) | 2;
const TAG_ANY_VALUE = (2 << 3) | 2;

/** Bytes of a length-delimited field (tag, length, content); 0 for an empty proto3 scalar that is left out. */
function fieldSize(contentLength: number, omitEmpty: boolean): number {
  if (omitEmpty && contentLength === 0) return 0;
  return 1 + varintSize(contentLength) + contentLength;
}

function writeString(
  buf: Buffer,
  pos: number,
  tag: number,
  s: string,
  len: number,
  omitEmpty: boolean,
): number {
  if (omitEmpty && len === 0) return pos;
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, len);
  return pos + buf.write(s, pos, len, "utf8");
}

/**
 * An envoy.service.discovery.v3.Resource {name, aliases, version, resource}
 * written directly: with 10,000 pods, protobuf-es's reflective create() +
 * toBinary() of each was most of publish().
 */
export function encodeResource(
  name: string,
  version: string,
  aliases: readonly string[],
  any: Any,
): Uint8Array {
  const nameLen = Buffer.byteLength(name);
  const versionLen = Buffer.byteLength(version);
  const typeUrlLen = Buffer.byteLength(any.typeUrl);
  const aliasLens = aliases.map((a) => Buffer.byteLength(a));
  const anyLen = fieldSize(typeUrlLen, true) + fieldSize(any.value.byteLength, true);
  let size = fieldSize(nameLen, true) + fieldSize(versionLen, true) + fieldSize(anyLen, false);
  for (const l of aliasLens) size += fieldSize(l, false);
  const buf = Buffer.allocUnsafe(size);
  let pos = writeString(buf, 0, TAG_RESOURCE_NAME, name, nameLen, true);
  for (let i = 0; i < aliases.length; i++)
    pos = writeString(buf, pos, TAG_RESOURCE_ALIASES, aliases[i] as string, aliasLens[i] as number, false);
  pos = writeString(buf, pos, TAG_RESOURCE_VERSION, version, versionLen, true);
  buf[pos++] = TAG_RESOURCE_BODY;
  pos = writeVarint(buf, pos, anyLen);
  pos = writeString(buf, pos, TAG_ANY_TYPE_URL, any.typeUrl, typeUrlLen, true);
  if (any.value.byteLength > 0) {
    buf[pos++] = TAG_ANY_VALUE;
    pos = writeVarint(buf, pos, any.value.byteLength);
    buf.set(any.value, pos);
  }
  return buf;
}

/** gRPC's message prefix: 1 byte compressed flag (0), 4 bytes length (big endian). */
export const GRPC_PREFIX_LENGTH = 5;

/**
 * A DeltaDiscoveryResponse encoded once with its gRPC message prefix in front,
 * so every stream that sends it writes the same bytes: grpc-js would
 * otherwise copy the message into a new prefixed buffer per stream (100
 * copies of 3 MB for a full push of 10,000 pods to 100 proxies).
 */
export class FramedResponse {
  constructor(
    /** Prefix + message. */
    readonly framed: Buffer,
  ) {}

  /** The DeltaDiscoveryResponse bytes alone. */
  get payload(): Buffer {
    return this.framed.subarray(GRPC_PREFIX_LENGTH);
  }
}

/**
 * DeltaDiscoveryResponse bytes, assembled from the pre-encoded Resource
 * messages: one exact-size allocation (with room for the gRPC prefix) and
 * one copy of each resource, no re-encoding per stream.
 */
export function encodeFramedResponse(
  typeUrl: string,
  systemVersion: string,
  added: readonly Uint8Array[],
  removed: readonly string[],
  nonce: string,
): FramedResponse {
  const strings: [number, Buffer][] = [
    [TAG_SYSTEM_VERSION, Buffer.from(systemVersion)],
    [TAG_TYPE_URL, Buffer.from(typeUrl)],
    [TAG_NONCE, Buffer.from(nonce)],
    ...removed.map((n): [number, Buffer] => [TAG_REMOVED, Buffer.from(n)]),
  ];
  let size = 0;
  for (const r of added) size += 1 + varintSize(r.byteLength) + r.byteLength;
  for (const [, b] of strings) size += 1 + varintSize(b.byteLength) + b.byteLength;
  const buf = Buffer.allocUnsafe(GRPC_PREFIX_LENGTH + size);
  buf[0] = 0;
  buf.writeUInt32BE(size, 1);
  let pos = GRPC_PREFIX_LENGTH;
  for (const r of added) {
    buf[pos++] = TAG_RESOURCES;
    pos = writeVarint(buf, pos, r.byteLength);
    buf.set(r, pos);
    pos += r.byteLength;
  }
  for (const [tag, b] of strings) {
    buf[pos++] = tag;
    pos = writeVarint(buf, pos, b.byteLength);
    buf.set(b, pos);
    pos += b.byteLength;
  }
  return new FramedResponse(buf);
}

/** The DeltaDiscoveryResponse bytes alone (see encodeFramedResponse). */
export function encodeResponse(
  typeUrl: string,
  systemVersion: string,
  added: readonly Uint8Array[],
  removed: readonly string[],
  nonce: string,
): Buffer {
  return encodeFramedResponse(typeUrl, systemVersion, added, removed, nonce).payload;
}

/**
 * Lets a stream write a FramedResponse's bytes as they are. grpc-js frames
 * each message by copying it into a new buffer behind the gRPC prefix
 * (BaseServerInterceptingCall.serializeMessage); a full push of 10,000 pods
 * to 100 proxies made 100 copies of 3 MB that way, then collected them. The
 * hook is per call and only where that grpc-js internal exists (no
 * interceptors): otherwise the response is serialized, and copied, as usual.
 */
export function shareFraming(call: object): boolean {
  const inner = (call as unknown as { call?: { serializeMessage?: (value: unknown) => Buffer } }).call;
  const serialize = inner?.serializeMessage;
  if (!inner || typeof serialize !== "function") return false;
  inner.serializeMessage = (value: unknown) =>
    value instanceof FramedResponse ? value.framed : serialize.call(inner, value);
  return true;
}
