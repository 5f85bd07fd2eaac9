/**
 * A file transfer attached to a running node is a bulk worker beside the node that carries the
 * group's games: it gives up CPU first (nice 10, or Windows' "below normal") so that, on a busy
 * machine, the node and a game's tunnel are scheduled ahead of it (issue 16: game datagrams stay
 * fast while a file moves; `deno task bench game`). On an idle machine it runs just as fast.
 */
import { setPriority } from "node:os";

export const BACKGROUND_NICE = 10;

/** Lowers this process's CPU priority; false where that is not allowed (no --allow-sys, or refused). */
export function runInBackground(set: (priority: number) => void = setPriority): boolean {
  try {
    set(BACKGROUND_NICE);
    return true;
  } catch {
    return false; // a convenience: the transfer runs at normal priority
  }
}
