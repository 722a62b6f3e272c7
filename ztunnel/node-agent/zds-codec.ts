// The node agent's side of the CNI protocol (core/proto/ambit/cni.proto), with
// the generated code; the plugin hand-encodes the same messages (cni/wire.ts).
// Converted at the edge into the plain shapes the ZDS server hands on.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AmbitError } from "../../core/errors/errors.js";
import { CniRequestSchema, CniResponseSchema } from "../../core/gen/cni_pb.js";

export { FrameReader, frame, MAX_FRAME } from "../../cni/wire.js";

export interface CniPodRef {
  /** `namespace/name`, the node agent's pod key. */
  key: string;
  uid: string;
  name: string;
  namespace: string;
}

export interface CniAdd extends CniPodRef {
  netnsPath: string;
  ips: string[];
  containerId: string;
  interface: string;
}

export interface CniDel extends CniPodRef {
  containerId: string;
  netnsPath: string;
}

export type CniMessage = { kind: "add"; add: CniAdd } | { kind: "del"; del: CniDel };

function podRef(p: { uid: string; name: string; namespace: string } | undefined, what: string): CniPodRef {
  if (!p?.name || !p.namespace)
    throw new AmbitError("ZDS_PROTOCOL", `${what}: field pod: name and namespace are required`);
  return { key: `${p.namespace}/${p.name}`, uid: p.uid, name: p.name, namespace: p.namespace };
}

/** Decodes and validates one CniRequest. */
export function decodeCniRequest(buf: Uint8Array): CniMessage {
  let req: ReturnType<typeof fromBinary<typeof CniRequestSchema>>;
  try {
    req = fromBinary(CniRequestSchema, buf);
  } catch (e) {
    throw new AmbitError("ZDS_PROTOCOL", `CniRequest: not a valid message: ${(e as Error).message}`);
  }
  const p = req.payload;
  if (p.case === "add") {
    const a = p.value;
    if (!a.netnsPath) throw new AmbitError("ZDS_PROTOCOL", "CniAddPod: field netns_path: required");
    return {
      kind: "add",
      add: {
        ...podRef(a.pod, "CniAddPod"),
        netnsPath: a.netnsPath,
        ips: [...a.ips],
        containerId: a.containerId,
        interface: a.interface,
      },
    };
  }
  if (p.case === "del") {
    const d = p.value;
    return {
      kind: "del",
      del: { ...podRef(d.pod, "CniDelPod"), containerId: d.containerId, netnsPath: d.netnsPath },
    };
  }
  throw new AmbitError("ZDS_PROTOCOL", "CniRequest: field payload: empty");
}

export function encodeCniAck(ack: { error?: string; captured?: boolean }): Uint8Array {
  return toBinary(
    CniResponseSchema,
    create(CniResponseSchema, {
      payload: { case: "ack", value: { error: ack.error ?? "", captured: ack.captured ?? false } },
    }),
  );
}
