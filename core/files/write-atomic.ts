// Writes a file so that readers see the old content or the new, never half
// of it: the data goes to a temporary file beside it (same filesystem), which
// is then renamed onto the name (rename is atomic). Readers of these files
// (pollFile, the CNI plugin, the CA's key files) may read at any moment.
import fs from "node:fs";
import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";

const tmpName = (file: string) => `${file}.${process.pid}.tmp`;

/** Creates the directory when needed; `mode` applies whatever the umask. */
export async function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = tmpName(file);
  await writeFile(tmp, data, { mode });
  await chmod(tmp, mode);
  await rename(tmp, file);
}

/** The same, synchronously (for callers that must not yield between writing and what follows). */
export function writeFileAtomicSync(file: string, data: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = tmpName(file);
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}
