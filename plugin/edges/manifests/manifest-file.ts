/**
 * Manifest files on disk: read + open (core/manifest does every check), atomic write, and the
 * file-name convention of the watched folder.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { ManifestError } from "../../errors.js";
import { openManifestAsync, type OpenedManifest, type OpenManifestOptions } from "../../core/manifest/manifest.js";
import { writeFileAtomic } from "./atomic-write.js";

/** Manifest files end in this suffix; the watcher loads only those. */
export const MANIFEST_FILE_SUFFIX = ".manifest.json";
/** Files starting with this prefix are documentation examples and are never loaded. */
export const EXAMPLE_FILE_PREFIX = "example.";

/**
 * True if a file of the watched folder is a manifest to load: `*.manifest.json`, not hidden
 * (dot files, the atomic writer's temp files), not an `example.*` file, not the schema.
 */
export function isWatchedManifestName(fileName: string): boolean {
  const name = basename(fileName);
  return name.endsWith(MANIFEST_FILE_SUFFIX) && name.length > MANIFEST_FILE_SUFFIX.length && !name.startsWith(".") && !name.startsWith(EXAMPLE_FILE_PREFIX);
}

/** Reads and opens a manifest file; errors carry `details.file`. */
export async function readManifestFile(path: string, opts: OpenManifestOptions): Promise<OpenedManifest> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ManifestError("MANIFEST_READ_FAILED", `${path}: cannot read: ${err.code === "ENOENT" ? "no such file" : err.message}`, { file: path, errno: err.code });
  }
  try {
    return await openManifestAsync(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), opts);
  } catch (e) {
    if (e instanceof ManifestError) throw new ManifestError(e.code, `${path}: ${e.message}`, { ...e.details, file: path });
    throw e;
  }
}

/** Writes a manifest's file text atomically (mode 0600); MANIFEST_FILE_EXISTS unless `force`. */
export function writeManifestFile(path: string, text: string, opts: { force?: boolean } = {}): void {
  if (!opts.force && existsSync(path)) {
    throw new ManifestError("MANIFEST_FILE_EXISTS", `${path} already exists; use --force to replace it`, { file: path });
  }
  try {
    writeFileAtomic(path, text, 0o600);
  } catch (e) {
    throw new ManifestError("MANIFEST_WRITE_FAILED", `${path}: cannot write: ${(e as Error).message}`, { file: path });
  }
}
