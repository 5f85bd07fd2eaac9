/**
 * The members a node was linked to, kept in the data folder between runs (owner-only: it holds
 * their addresses), so a node that comes back can dial them before it spends a mail (Peer.comeBack).
 */
import { join } from "node:path";
import { entryFromWire, entryToWire } from "../node/pex.ts";
import type { PeerEntry } from "../protocol/messages.ts";
import { SECRET_DIR_MODE, SECRET_FILE_MODE } from "./config_file.ts";

/** Older than this, a member's address is not worth a dial before asking by mail. */
export const REMEMBER_MS = 12 * 3600_000;
const MAX_REMEMBERED = 32;

export function rememberedPath(dataDir: string, address: string, user: string): string {
  const safe = `${address}-${user}`.toLowerCase().replace(/[^a-z0-9@._-]/g, "_");
  return join(dataDir, `linked-${safe}.json`);
}

export function loadRemembered(path: string, now: number): PeerEntry[] {
  try {
    const file = JSON.parse(Deno.readTextFileSync(path)) as { saved?: number; members?: unknown[] };
    if (typeof file.saved !== "number" || now - file.saved > REMEMBER_MS || !Array.isArray(file.members)) {
      return [];
    }
    return file.members.map((w) => entryFromWire(w, file.saved!)).filter((e): e is PeerEntry =>
      e !== undefined
    );
  } catch {
    return []; // never saved, or unreadable: ask by mail
  }
}

/** Writes the members linked now (an empty list keeps the last one: a node alone remembers its group). */
export function saveRemembered(path: string, entries: readonly PeerEntry[], now: number): void {
  if (entries.length === 0) return;
  const tmp = `${path}.tmp`;
  try {
    Deno.mkdirSync(join(path, ".."), { recursive: true, mode: SECRET_DIR_MODE });
    const members = entries.slice(0, MAX_REMEMBERED).map(entryToWire);
    Deno.writeTextFileSync(tmp, JSON.stringify({ saved: now, members }) + "\n", { mode: SECRET_FILE_MODE });
    Deno.renameSync(tmp, path);
  } catch {
    // a convenience: without it the node asks by mail, as before
  }
}
