/**
 * Writing the files `init` creates: the config (JSON of option names and values) and the network
 * key. Both hold secrets (mail passwords inside URLs, the key), so they are created owner-only
 * (0600) in an owner-only folder (0700), and written whole to a temporary name first so a crash
 * never leaves half a file.
 */
import { dirname } from "node:path";
import { UsageError } from "./errors.ts";

export const SECRET_FILE_MODE = 0o600;
export const SECRET_DIR_MODE = 0o700;

/** Writes `text` to `path` readable and writable by its owner only. */
export async function writeSecretFile(path: string, text: string, what: string): Promise<void> {
  const dir = dirname(path);
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.mkdir(dir, { recursive: true, mode: SECRET_DIR_MODE });
    await Deno.writeTextFile(tmp, text, { mode: SECRET_FILE_MODE, createNew: true });
    // The mode given at creation passes through the umask; set it outright (not on Windows, where
    // the file inherits the user profile's ACL, which is already private).
    if (Deno.build.os !== "windows") await Deno.chmod(tmp, SECRET_FILE_MODE);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    const why = err instanceof Deno.errors.PermissionDenied
      ? "permission denied (check the folder's owner, or run Deno with --allow-write)"
      : (err as Error).message.replace(/\.$/, "");
    throw new UsageError(`Cannot write the ${what} ${path}: ${why}. Pick another place with --config FILE.`);
  }
}

/** The config file's text: one JSON object, keys in the order given, two-space indented. */
export function configText(settings: Record<string, unknown>): string {
  return JSON.stringify(settings, null, 2) + "\n";
}

/** Permission bits of a file, or undefined where the platform has none (Windows). */
export async function fileMode(path: string): Promise<number | undefined> {
  const st = await Deno.stat(path);
  return st.mode === null ? undefined : st.mode & 0o777;
}

/** Milliseconds as the config file and the flags take them: "12h", "90s", "500ms". */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
