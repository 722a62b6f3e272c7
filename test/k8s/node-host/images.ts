// Container images the test nodes know, as local programs (there is no
// image store): the image's ENTRYPOINT/CMD become a program on this machine.
//   ambit, <registry>/ambit[:tag]      → node <build>/cli/main.js  (the ambit CLI next to this file's build)
//   busybox, alpine, debian, ubuntu    → sh (command/args run as they are)
//   node[:tag]                         → node
// Anything else has no entrypoint: the pod needs `command`.
import { fileURLToPath } from "node:url";
import type { ImageEntrypoint } from "../../../local/pod-runner.js";

/** The ambit CLI built next to this file (.build/<x>/cli/main.js, or dist/cli/main.js). */
export const AMBIT_CLI = fileURLToPath(new URL("../../../cli/main.js", import.meta.url));

/** The repository part of an image reference, without registry and tag (pure): ghcr.io/a/ambit:0.1 → ambit. */
export function imageName(image: string): string {
  const noDigest = image.split("@")[0]!;
  const last = noDigest.slice(noDigest.lastIndexOf("/") + 1);
  return last.split(":")[0]!;
}

export function resolveImage(image: string | undefined): ImageEntrypoint | undefined {
  if (!image) return undefined;
  const name = imageName(image);
  if (name === "ambit") return { entrypoint: [process.execPath, AMBIT_CLI] };
  if (["busybox", "alpine", "debian", "ubuntu"].includes(name)) return { entrypoint: [], cmd: ["sh"] };
  if (name === "node") return { entrypoint: [process.execPath] };
  return undefined;
}
