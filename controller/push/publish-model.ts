// The controller's translate → publish step: the mesh model (workloads,
// services, L4 policies) as the xDS resources DeltaAdsServer.publish()
// takes. Each object is encoded only when its content changed since the last
// translation (ResourceCache), so an incremental change costs a JSON
// comparison per object and one encode; unchanged Anys are recognised by
// publish() by identity.
import { anyPack } from "@bufbuild/protobuf/wkt";
import { ObjectError } from "../../core/errors/errors.js";
import { AuthorizationSchema } from "../../core/gen/authorization_pb.js";
import { AddressSchema } from "../../core/gen/workload_pb.js";
import type { AuthzPolicy, MeshService, MeshWorkload } from "../../core/model/types.js";
import {
  addressAliases,
  addressResourceName,
  serviceToAddress,
  workloadToAddress,
} from "../../core/xds/codec-address.js";
import { authzResourceName, policyToProto } from "../../core/xds/codec-authz.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";
import { ResourceCache } from "./resource-cache.js";
import type { DeltaAdsServer } from "./server.js";

export interface PublishableModel {
  workloads: readonly MeshWorkload[];
  services: readonly MeshService[];
  policies: readonly AuthzPolicy[];
}

export interface PublishStats {
  /** Objects encoded this time (changed or new). */
  encoded: number;
  /** Objects that could not be encoded: not published, reported as errors naming object and field. */
  rejected: ObjectError[];
}

type AddressObject = MeshWorkload | MeshService;

function objectRef(x: AddressObject | AuthzPolicy): { kind: string; namespace: string; name: string } {
  const kind = "uid" in x ? "Pod" : "key" in x ? "Service" : "AuthorizationPolicy";
  return { kind, namespace: x.namespace, name: x.name };
}

export class ModelPublisher {
  private encodes = 0;
  private readonly addresses = new ResourceCache<AddressObject>(
    addressResourceName,
    (x) => {
      this.encodes++;
      return "uid" in x
        ? anyPack(AddressSchema, workloadToAddress(x))
        : anyPack(AddressSchema, serviceToAddress(x));
    },
    addressAliases,
  );
  private readonly policies = new ResourceCache<AuthzPolicy>(authzResourceName, (p) => {
    this.encodes++;
    return anyPack(AuthorizationSchema, policyToProto(p));
  });

  constructor(private readonly ads: DeltaAdsServer) {}

  /** Publishes the whole model; only what changed reaches the proxies. */
  publish(model: PublishableModel): PublishStats {
    this.encodes = 0;
    const rejected: ObjectError[] = [];
    const onError = (x: AddressObject | AuthzPolicy, err: Error) => {
      const field = (err as { field?: string }).field ?? "";
      rejected.push(
        err instanceof ObjectError
          ? err
          : new ObjectError("XDS_REJECTED", objectRef(x), field, `cannot be sent over xDS: ${err.message}`),
      );
    };
    const addr = this.addresses.build([...model.workloads, ...model.services], onError);
    const pol = this.policies.build(model.policies, onError);
    this.ads.publish(ADDRESS_TYPE, addr.resources, addr.aliases);
    this.ads.publish(AUTHORIZATION_TYPE, pol.resources);
    return { encoded: this.encodes, rejected };
  }
}
