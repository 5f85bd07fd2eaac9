/**
 * Where a received file may go: only inside the folder the user chose. A name from the other side
 * is a list of plain components ("photos/2024/a.jpg"); "..", ".", empty components, absolute
 * paths, drive letters, backslashes and control characters are refused outright, and on disk no
 * folder on the way may be a symbolic link (one planted there could lead outside).
 */
import { join } from "node:path";

export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafePathError";
  }
}

const MAX_PATH_BYTES = 4096;
const MAX_COMPONENT_BYTES = 255;
/** Suffix of a partly received file, kept for resume: `.NAME.mailmeet-part` beside the final name. */
export const PART_SUFFIX = ".mailmeet-part";

/** The components of a name the other side sent, or UnsafePathError saying why not. */
export function safeComponents(name: unknown): string[] {
  if (typeof name !== "string" || name.length === 0) {
    throw new UnsafePathError("An empty file name was offered.");
  }
  const shown = JSON.stringify(name.slice(0, 200));
  if (new TextEncoder().encode(name).length > MAX_PATH_BYTES) {
    throw new UnsafePathError(`The name ${shown} is too long.`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) throw new UnsafePathError(`The name ${shown} holds control characters.`);
  if (name.includes("\\")) throw new UnsafePathError(`The name ${shown} holds a backslash.`);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) {
    throw new UnsafePathError(
      `The name ${shown} is an absolute path; only names inside the folder are taken.`,
    );
  }
  const parts = name.split("/");
  for (const p of parts) {
    if (p === "" || p === "." || p === "..") {
      throw new UnsafePathError(`The name ${shown} would leave the target folder or is malformed.`);
    }
    if (new TextEncoder().encode(p).length > MAX_COMPONENT_BYTES) {
      throw new UnsafePathError(
        `The name ${shown} has a component longer than ${MAX_COMPONENT_BYTES} bytes.`,
      );
    }
    if (p.endsWith(PART_SUFFIX)) throw new UnsafePathError(`The name ${shown} ends in ${PART_SUFFIX}.`);
  }
  return parts;
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/**
 * Makes the folders leading to `parts` inside `root` (each checked: a real folder, not a link)
 * and returns the final path and the partial file's path beside it.
 */
export async function prepareTarget(
  root: string,
  parts: readonly string[],
  opts: { createDirs: boolean },
): Promise<{ path: string; part: string }> {
  let dir = root;
  for (const p of parts.slice(0, -1)) {
    dir = join(dir, p);
    const info = await lstatOrNull(dir);
    if (info === null) {
      if (!opts.createDirs) continue;
      await Deno.mkdir(dir);
    } else if (info.isSymlink) {
      throw new UnsafePathError(`${dir} is a symbolic link; nothing is written through links.`);
    } else if (!info.isDirectory) {
      throw new UnsafePathError(`${dir} exists and is not a folder.`);
    }
  }
  const last = parts[parts.length - 1];
  return { path: join(dir, last), part: join(dir, `.${last}${PART_SUFFIX}`) };
}

/** lstat of a target, refusing links. */
export async function existingTarget(path: string): Promise<Deno.FileInfo | null> {
  const info = await lstatOrNull(path);
  if (info?.isSymlink) {
    throw new UnsafePathError(`${path} is a symbolic link; nothing is written through links.`);
  }
  return info;
}
