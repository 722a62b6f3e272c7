// A simulated ztunnel for the control-plane scenario that reads only the
// envelope of each DeltaDiscoveryResponse (type_url, nonce, resource names)
// and ACKs it. A hundred real ztunnels each decode the full set on their own
// node, in parallel; a hundred DeltaAdsClients in one harness process on a
// 2-core machine decode it a hundred times in series, and that (not the
// server) is what a "publish → every ACK" clock then measures. So all but one
// subscriber are these, each on its own channel (its own TCP connection, as
// on a cluster), and one is the real DeltaAdsClient, whose full decode is
// part of the clock.
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AggregatedDiscoveryService, DeltaDiscoveryRequestSchema } from "../../core/gen/xds_pb.js";
import { grpcServiceDefinition } from "../../core/xds/grpc-service.js";

interface Envelope {
  typeUrl: string;
  nonce: string;
  /** Resources carried (new or updated). */
  added: number;
  removed: number;
}

/**
 * DeltaDiscoveryResponse fields 4 (type_url) and 5 (nonce); fields 2
 * (resources) and 6 (removed_resources) are only counted: names are not even
 * read, so that a hundred of these cost the harness little next to the server.
 * No allocation per field: a hundred walks over 10,000 resources are a
 * million fields.
 */
export function decodeEnvelope(b: Buffer): Envelope {
  const env: Envelope = { typeUrl: "", nonce: "", added: 0, removed: 0 };
  let pos = 0;
  const end = b.length;
  while (pos < end) {
    // Tags of this message's fields are one byte (field numbers below 16).
    let tag = b[pos++] as number;
    if (tag >= 0x80) {
      let shift = 7;
      tag &= 0x7f;
      for (;;) {
        const byte = b[pos++] as number;
        tag += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) break;
        shift += 7;
      }
    }
    const wt = tag & 7;
    if (wt !== 2) {
      if (wt === 0) while ((b[pos++] as number) >= 0x80);
      else if (wt === 1) pos += 8;
      else if (wt === 5) pos += 4;
      else throw new Error(`wire type ${wt} not expected in DeltaDiscoveryResponse`);
      continue;
    }
    let len = 0;
    let shift = 0;
    for (;;) {
      const byte = b[pos++] as number;
      len += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    const field = tag >>> 3;
    if (field === 2) env.added++;
    else if (field === 4) env.typeUrl = b.toString("utf8", pos, pos + len);
    else if (field === 5) env.nonce = b.toString("utf8", pos, pos + len);
    else if (field === 6) env.removed++;
    pos += len;
  }
  return env;
}

/** hyper's default HTTP/2 client stream window (DEFAULT_STREAM_WINDOW), what a ztunnel advertises. */
export const ZTUNNEL_STREAM_WINDOW = 2 * 1024 * 1024;

const def = grpcServiceDefinition(AggregatedDiscoveryService);
const delta = def.deltaAggregatedResources;
if (!delta) throw new Error("generated AggregatedDiscoveryService lacks DeltaAggregatedResources");
const EnvelopeAdsClient = grpc.makeGenericClientConstructor(
  { deltaAggregatedResources: { ...delta, responseDeserialize: (b: Buffer) => decodeEnvelope(b) } },
  "EnvelopeAds",
);

export class EnvelopeSubscriber {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Uint8Array, Envelope>;
  private held = 0;
  private readonly firstResponse: Promise<void>;

  constructor(address: string, nodeId: string, nodeName: string, typeUrl: string) {
    // A channel option of its own: grpc-js would otherwise share one HTTP/2
    // connection among all channels to one target.
    this.client = new EnvelopeAdsClient(address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
      // Istio's ztunnel receives xDS through hyper's HTTP/2 client, whose
      // default windows are 2 MiB per stream and 5 MiB per connection
      // (grpc-js: 64 KiB unless told). grpc-js sets one value for both; one
      // stream per connection here, so the stream's 2 MiB is what counts.
      "grpc-node.flow_control_window": ZTUNNEL_STREAM_WINDOW,
      "ambit.bench.subscriber": nodeId,
    });
    const method = (
      this.client as unknown as Record<string, () => grpc.ClientDuplexStream<Uint8Array, Envelope>>
    ).deltaAggregatedResources;
    this.call = (method as () => grpc.ClientDuplexStream<Uint8Array, Envelope>).call(this.client);
    this.call.on("error", () => undefined);
    let first: () => void = () => undefined;
    this.firstResponse = new Promise((resolve) => {
      first = resolve;
    });
    this.call.on("data", (env: Envelope) => {
      this.held += env.added - env.removed;
      this.send({ typeUrl: env.typeUrl, responseNonce: env.nonce });
      first();
    });
    this.send({ node: { id: nodeId, metadata: { NODE_NAME: nodeName } }, typeUrl });
  }

  private send(init: Parameters<typeof create<typeof DeltaDiscoveryRequestSchema>>[1]): void {
    // The request is the generated type, serialized by the shared codec.
    this.call.write(create(DeltaDiscoveryRequestSchema, init) as unknown as Uint8Array);
  }

  /** Resolves on the first response (the server answers a subscription once the type is published). */
  ready(): Promise<void> {
    return this.firstResponse;
  }

  /**
   * Resources received minus removed: the count held after a full push from
   * nothing (an update of a held resource counts again; the harness reads
   * this only after the full push).
   */
  get resources(): number {
    return this.held;
  }

  /** After a publish of nothing (checked on the full client): the count starts again from 0. */
  resetCount(): void {
    this.held = 0;
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}
