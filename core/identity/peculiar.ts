// The one place @peculiar/x509 is loaded: its dependency tsyringe needs a
// Reflect metadata polyfill loaded first, and the library must use node's
// WebCrypto. Everything in ambit imports x509 from here.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as never);

export { x509 };
export const subtle = webcrypto.subtle;
