// The plugin's hand-written encoding (cni/wire.ts) and the node agent's
// generated one (ztunnel/node-agent/zds-codec.ts) agree: the same bytes both
// ways, for any strings; frames survive any chunking; bad input is refused.
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import t from "tap";
import {
  decodeResponse,
  encodeRequest,
  FrameReader,
  frame,
  MAX_FRAME,
  type WireRequest,
} from "../../cni/wire.js";
import { CniRequestSchema } from "../../core/gen/cni_pb.js";
import { decodeCniRequest, encodeCniAck } from "../../ztunnel/node-agent/zds-codec.js";

const nonEmpty = fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" });
const any = fc.string({ maxLength: 40, unit: "grapheme" });
const podArb = fc.record({ uid: any, name: nonEmpty, namespace: nonEmpty });

const addArb = fc.record({
  kind: fc.constant("add" as const),
  pod: podArb,
  netnsPath: nonEmpty,
  ips: fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 3 }),
  containerId: any,
  interface: any,
});
const delArb = fc.record({
  kind: fc.constant("del" as const),
  pod: podArb,
  containerId: any,
  netnsPath: any,
});

function generated(r: WireRequest): Uint8Array {
  const pod = { uid: r.pod.uid, name: r.pod.name, namespace: r.pod.namespace };
  return toBinary(
    CniRequestSchema,
    create(CniRequestSchema, {
      payload:
        r.kind === "add"
          ? {
              case: "add",
              value: {
                pod,
                netnsPath: r.netnsPath,
                ips: r.ips,
                containerId: r.containerId,
                interface: r.interface,
              },
            }
          : { case: "del", value: { pod, containerId: r.containerId, netnsPath: r.netnsPath } },
    }),
  );
}

t.test("hand-encoded requests are byte-identical to the generated encoding and decode back", async (t) => {
  fc.assert(
    fc.property(fc.oneof(addArb, delArb), (r) => {
      const mine = encodeRequest(r);
      t.same([...mine], [...generated(r)]);
      const back = decodeCniRequest(mine);
      if (r.kind === "add") {
        t.equal(back.kind, "add");
        if (back.kind === "add")
          t.same(back.add, {
            key: `${r.pod.namespace}/${r.pod.name}`,
            ...r.pod,
            netnsPath: r.netnsPath,
            ips: r.ips,
            containerId: r.containerId,
            interface: r.interface,
          });
      } else {
        t.equal(back.kind, "del");
        if (back.kind === "del")
          t.same(back.del, {
            key: `${r.pod.namespace}/${r.pod.name}`,
            ...r.pod,
            containerId: r.containerId,
            netnsPath: r.netnsPath,
          });
      }
    }),
    { numRuns: 200 },
  );
});

t.test("acks from the generated encoder decode in the plugin", async (t) => {
  fc.assert(
    fc.property(any, fc.boolean(), (error, captured) => {
      t.same(decodeResponse(Buffer.from(encodeCniAck({ error, captured }))), { error, captured });
    }),
    { numRuns: 100 },
  );
  t.throws(() => decodeResponse(Buffer.alloc(0)), /no ack/, "an empty response is not an ack");
  t.throws(() => decodeResponse(Buffer.from([0x0a, 0x05, 0x0a])), /truncated/);
});

t.test("frames come out whole whatever the chunking", async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
      (msgs, cuts) => {
        const stream = Buffer.concat(msgs.map((m) => frame(Buffer.from(m))));
        const r = new FrameReader();
        const out: Buffer[] = [];
        let i = 0;
        let c = 0;
        while (i < stream.length) {
          const n = cuts[c++ % cuts.length]!;
          out.push(...r.push(stream.subarray(i, i + n)));
          i += n;
        }
        t.same(
          out.map((b) => [...b]),
          msgs.map((m) => [...m]),
        );
        t.equal(r.pending, 0);
      },
    ),
    { numRuns: 100 },
  );
});

t.test("oversized frames are refused", async (t) => {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(MAX_FRAME + 1);
  t.throws(() => new FrameReader().push(head), /exceeds/);
  t.throws(() => frame(Buffer.alloc(MAX_FRAME + 1)), /exceeds/);
});

t.test("invalid requests name the field", async (t) => {
  t.throws(() => decodeCniRequest(new Uint8Array([0xff, 0xff])), { code: "ZDS_PROTOCOL" });
  t.throws(() => decodeCniRequest(new Uint8Array([])), /field payload: empty/);
  const noNetns = encodeRequest({
    kind: "add",
    pod: { uid: "", name: "a", namespace: "b" },
    netnsPath: "",
    ips: [],
    containerId: "",
    interface: "",
  });
  t.throws(() => decodeCniRequest(noNetns), /field netns_path: required/);
  const noPod = encodeRequest({
    kind: "del",
    pod: { uid: "u", name: "", namespace: "" },
    containerId: "",
    netnsPath: "",
  });
  t.throws(() => decodeCniRequest(noPod), /field pod: name and namespace are required/);
});
