// Bridges protobuf-es service descriptors (generated from core/proto) to
// @grpc/grpc-js, so servers and clients of every gRPC API in ambit come from
// the same generated code: one way of defining a gRPC service.
import type * as grpc from "@grpc/grpc-js";
import { type DescMessage, type DescService, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";

function codec<D extends DescMessage>(schema: D) {
  return {
    serialize: (m: MessageShape<D>): Buffer => Buffer.from(toBinary(schema, m)),
    deserialize: (b: Buffer): MessageShape<D> => fromBinary(schema, b),
  };
}

/** A grpc-js ServiceDefinition for a generated protobuf-es service. */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    const input = codec(method.input);
    const output = codec(method.output);
    def[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: input.serialize as (v: unknown) => Buffer,
      requestDeserialize: input.deserialize as (b: Buffer) => unknown,
      responseSerialize: output.serialize as (v: unknown) => Buffer,
      responseDeserialize: output.deserialize as (b: Buffer) => unknown,
      originalName: method.name,
    };
  }
  return def;
}
