// The CA's signing root on a cluster lives in a Secret (default
// ambit-system/ambit-ca-root) with istiod's plug-in file names as keys, so an
// Istio `cacerts` secret can be copied as is. Every replica materializes it
// into a private directory (an emptyDir) and loads the CA from there.
//
// On first start no Secret exists: a replica generates a root and creates the
// Secret. Two replicas may race; creation is atomic, so the loser (409) adopts
// the winner's root instead of its own, and all replicas sign with one root.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Logger, logger as makeLogger } from "../../../core/telemetry/logger.js";
import { CA_FILES, type CaOptions, CertificateAuthority } from "../../ca/authority.js";
import { isConflict, isNotFound, type KubeClient } from "./client.js";

export interface CaRootSecretOptions extends CaOptions {
  client: KubeClient;
  namespace: string;
  /** Default ambit-ca-root. */
  name?: string;
  /** Private directory the files are written to (mode 0700). */
  dir: string;
  logger?: Logger;
}

interface Secret {
  metadata: { name: string; namespace: string };
  type?: string;
  data?: Record<string, string>;
}

const FILE_NAMES: string[] = Object.values(CA_FILES);

async function writeFiles(dir: string, data: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Files of an earlier materialization must not mix with this Secret's.
  await Promise.all(FILE_NAMES.map((f) => rm(join(dir, f), { force: true })));
  for (const [k, v] of Object.entries(data)) {
    if (!FILE_NAMES.includes(k)) continue;
    await writeFile(join(dir, k), Buffer.from(v, "base64"), { mode: k === CA_FILES.key ? 0o600 : 0o644 });
  }
}

/** Loads the CA from the Secret, or creates both (root and Secret) when there is none. */
export async function loadOrCreateCaFromSecret(
  opts: CaRootSecretOptions,
): Promise<{ ca: CertificateAuthority; origin: "secret" | "created" }> {
  const name = opts.name ?? "ambit-ca-root";
  const log = opts.logger ?? makeLogger("controller.ca");
  const path = `/api/v1/namespaces/${opts.namespace}/secrets/${name}`;
  const fromSecret = async (s: Secret) => {
    if (!s.data?.[CA_FILES.cert] || !s.data?.[CA_FILES.key]) {
      throw new Error(`Secret ${opts.namespace}/${name}: needs keys ${CA_FILES.cert} and ${CA_FILES.key}`);
    }
    await writeFiles(opts.dir, s.data);
    return { ca: await CertificateAuthority.loadOrCreate(opts.dir, opts), origin: "secret" as const };
  };

  try {
    return await fromSecret(await opts.client.get<Secret>(path));
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }

  await writeFiles(opts.dir, {});
  const ca = await CertificateAuthority.loadOrCreate(opts.dir, opts);
  const data: Record<string, string> = {};
  for (const f of FILE_NAMES) {
    try {
      data[f] = (await readFile(join(opts.dir, f))).toString("base64");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
  try {
    await opts.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${opts.namespace}/secrets`,
      body: {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name, namespace: opts.namespace, labels: { "app.kubernetes.io/part-of": "ambit" } },
        type: "Opaque",
        data,
      },
    });
    log.info({ secret: `${opts.namespace}/${name}` }, "created the mesh root CA");
    return { ca, origin: "created" };
  } catch (e) {
    if (!isConflict(e)) throw e;
    log.info({ secret: `${opts.namespace}/${name}` }, "another replica created the root first; using it");
    return fromSecret(await opts.client.get<Secret>(path));
  }
}

/** Name of the ConfigMap holding the mesh root certificate (public) for the ztunnels. */
export const ROOT_CERT_CONFIGMAP = "ambit-ca-root-cert";

/** Publishes the root certificate (root-cert.pem) in a ConfigMap of `namespace` (server-side apply). */
export async function publishRootCert(
  client: KubeClient,
  namespace: string,
  rootPem: string,
  fieldManager = "ambit-controller",
): Promise<void> {
  await client.request({
    method: "PATCH",
    path: `/api/v1/namespaces/${namespace}/configmaps/${ROOT_CERT_CONFIGMAP}`,
    query: { fieldManager, force: true },
    contentType: "application/apply-patch+yaml",
    body: {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: ROOT_CERT_CONFIGMAP, namespace, labels: { "app.kubernetes.io/part-of": "ambit" } },
      data: { "root-cert.pem": rootPem },
    },
  });
}
