// What the push server tells `ambit check` and the dashboard about the
// resources it publishes and the proxies connected to it.
import type { Any } from "@bufbuild/protobuf/wkt";

export interface PublishedResource {
  name: string;
  version: string;
  aliases: readonly string[];
  any: Any;
  /** envoy.service.discovery.v3.Resource, encoded once and shared by every stream. */
  encoded: Uint8Array;
}

export interface ProxyTypeInfo {
  typeUrl: string;
  wildcard: boolean;
  /** Named subscriptions (besides the wildcard). */
  names: string[];
  /** Resources the proxy holds by its ACKs (ackedVersions() lists them). */
  resources: number;
  acks: number;
  nacks: number;
  lastAckNonce?: string;
  lastNack?: { nonce: string; message: string; at: Date };
  /** A response is waiting for ACK/NACK. */
  awaitingAck: boolean;
  /** Every published resource the proxy subscribes to is ACKed at its current version. */
  inSync: boolean;
}

export interface ProxyConnectionInfo {
  /** Stream id, unique within this server. */
  id: number;
  nodeId: string;
  /** node.metadata.NODE_NAME, as Istio's ztunnel sends it. */
  nodeName?: string;
  metadata: Record<string, string>;
  peer: string;
  connectedAt: Date;
  types: ProxyTypeInfo[];
  /** Responses go out as bytes framed once and shared by every stream (false: grpc-js copies each per stream). */
  sharedFraming?: boolean;
}
