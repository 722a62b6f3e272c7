// The ztunnel's workload key and PKCS#10 request with node:crypto alone:
// an ECDSA P-256 key and a CSR with an empty subject and one critical URI SAN,
// what Istio's ztunnel sends and core/identity/x509.ts's createCsr makes with
// @peculiar/x509. That library (with its ASN.1 schemas and reflect-metadata)
// costs about 4.5 MB of RSS in every ztunnel for one small, fixed structure,
// written out here in DER (RFC 2986, RFC 5280 section 4.2.1.6).
import { generateKeyPair, type KeyObject, sign } from "node:crypto";
import { promisify } from "node:util";

export interface WorkloadKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const generateEc = promisify(generateKeyPair);

/** A new ECDSA P-256 key pair (generated off the event loop). */
export async function newWorkloadKey(): Promise<WorkloadKey> {
  return generateEc("ec", { namedCurve: "P-256" });
}

/** The private key as PKCS#8 PEM ("PRIVATE KEY"), for the TLS context. */
export function workloadKeyPem(key: WorkloadKey): string {
  return key.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const SEQUENCE = 0x30;
const SET = 0x31;
const OID_EXTENSION_REQUEST = Buffer.from("06092a864886f70d01090e", "hex"); // 1.2.840.113549.1.9.14
const OID_SUBJECT_ALT_NAME = Buffer.from("0603551d11", "hex"); // 2.5.29.17
const OID_ECDSA_WITH_SHA256 = Buffer.from("06082a8648ce3d040302", "hex"); // 1.2.840.10045.4.3.2
const INTEGER_ZERO = Buffer.from("020100", "hex");
const BOOLEAN_TRUE = Buffer.from("0101ff", "hex");

/** A PKCS#10 CSR (DER) asking for `uri` as the only SAN, signed with ECDSA-SHA256 by `key` (pure but for the signature). */
export function workloadCsrDer(uri: string, key: WorkloadKey): Buffer {
  if (!/^[\x20-\x7e]+$/.test(uri))
    throw new Error(`CSR: URI SAN must be printable ASCII: ${JSON.stringify(uri)}`);
  // GeneralNames: [6] IMPLICIT IA5String uniformResourceIdentifier.
  const generalNames = tlv(SEQUENCE, tlv(0x86, Buffer.from(uri, "ascii")));
  // Critical: the subject is empty (RFC 5280 section 4.2.1.6).
  const sanExtension = tlv(SEQUENCE, OID_SUBJECT_ALT_NAME, BOOLEAN_TRUE, tlv(0x04, generalNames));
  const extensionRequest = tlv(SEQUENCE, OID_EXTENSION_REQUEST, tlv(SET, tlv(SEQUENCE, sanExtension)));
  const spki = key.publicKey.export({ type: "spki", format: "der" });
  const info = tlv(
    SEQUENCE,
    INTEGER_ZERO,
    tlv(SEQUENCE), // empty subject Name
    spki,
    tlv(0xa0, extensionRequest), // attributes [0] IMPLICIT SET OF Attribute
  );
  const signature = sign("sha256", info, key.privateKey); // DER ECDSA-Sig-Value
  return tlv(
    SEQUENCE,
    info,
    tlv(SEQUENCE, OID_ECDSA_WITH_SHA256),
    tlv(0x03, Buffer.from([0]), signature), // BIT STRING, no unused bits
  );
}

/** The CSR as PEM ("CERTIFICATE REQUEST"), 64 columns. */
export function workloadCsrPem(uri: string, key: WorkloadKey): string {
  const b64 = workloadCsrDer(uri, key).toString("base64");
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64.match(/.{1,64}/g)?.join("\n")}\n-----END CERTIFICATE REQUEST-----\n`;
}
