// Wire encoding of what the push server sends: resource versions (content
// hashes) and DeltaDiscoveryResponse bytes assembled from Resource messages
// encoded once and shared by every stream.
import { createHash } from "node:crypto";
import type { Any } from "@bufbuild/protobuf/wkt";

/**
 * A resource's version: a hash of its content (and aliases, which travel in
 * the Resource beside it), so equal content has equal versions on every
 * controller replica, and an alias change reaches the proxies.
 */
export function resourceVersion(any: Any, aliases: readonly string[] = []): string {
  const h = createHash("sha256").update(any.typeUrl).update(any.value);
  for (const a of aliases) h.update("\u0000").update(a);
  return h.digest("base64url").slice(0, 16);
}

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

/**
 * DeltaDiscoveryResponse bytes, assembled from the pre-encoded Resource
 * messages: one exact-size allocation and one copy of each resource, no
 * re-encoding per stream.
 */
export function encodeResponse(
  typeUrl: string,
  systemVersion: string,
  added: readonly Uint8Array[],
  removed: readonly string[],
  nonce: string,
): Buffer {
  const strings: [number, Buffer][] = [
    [TAG_SYSTEM_VERSION, Buffer.from(systemVersion)],
    [TAG_TYPE_URL, Buffer.from(typeUrl)],
    [TAG_NONCE, Buffer.from(nonce)],
    ...removed.map((n): [number, Buffer] => [TAG_REMOVED, Buffer.from(n)]),
  ];
  let size = 0;
  for (const r of added) size += 1 + varintSize(r.byteLength) + r.byteLength;
  for (const [, b] of strings) size += 1 + varintSize(b.byteLength) + b.byteLength;
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
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
  return buf;
}
