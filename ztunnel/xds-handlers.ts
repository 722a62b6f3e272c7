// xDS → MeshState: decode every resource of a response first (any bad one
// NACKs the whole response and changes nothing), then apply at once.
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { AmbitError } from "../core/errors/errors.js";
import { AuthorizationSchema } from "../core/gen/authorization_pb.js";
import { AddressSchema } from "../core/gen/workload_pb.js";
import type { AuthzPolicy } from "../core/model/types.js";
import type { XdsTypeHandler } from "../core/xds/client.js";
import { addressFromProto } from "../core/xds/codec-address.js";
import { policyFromProto } from "../core/xds/codec-authz.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../core/xds/type-urls.js";
import type { AddressInput, MeshState } from "./state/mesh-state.js";

function unpackError(name: string, typeUrl: string): AmbitError {
  return new AmbitError("XDS_REJECTED", `resource ${name}: not a ${typeUrl}`);
}

export function stateHandlers(state: MeshState, onChange: () => void): XdsTypeHandler[] {
  return [
    {
      typeUrl: ADDRESS_TYPE,
      apply(update) {
        const upserts: AddressInput[] = update.added.map((r) => {
          const a = anyUnpack(r.resource, AddressSchema);
          if (!a) throw unpackError(r.name, ADDRESS_TYPE);
          return addressFromProto(a);
        });
        state.applyAddresses(upserts, update.removed);
        onChange();
      },
    },
    {
      typeUrl: AUTHORIZATION_TYPE,
      apply(update) {
        const upserts: AuthzPolicy[] = update.added.map((r) => {
          const a = anyUnpack(r.resource, AuthorizationSchema);
          if (!a) throw unpackError(r.name, AUTHORIZATION_TYPE);
          return policyFromProto(a);
        });
        state.applyPolicies(upserts, update.removed);
        onChange();
      },
    },
  ];
}
