/**
 * A file transfer attached to a running node is a bulk worker beside the node that carries the
 * group's games: it gives up CPU first (nice 10, or Windows' "below normal") so that, on a busy
 * machine, the node and a game's tunnel are scheduled ahead of it (issue 16: game datagrams stay
 * fast while a file moves; `deno task bench game`). On an idle machine it runs just as fast.
 *
 * On Linux a priority belongs to a thread, not a process: setpriority(2) on pid 0 lowers only the
 * calling thread, and Deno's other threads (its I/O pool, which reads and writes the file, and
 * V8's GC helpers) would stay at normal priority. So every thread in /proc/self/task is lowered;
 * threads started later inherit the priority of the thread that starts them.
 */
import { setPriority } from "node:os";

export const BACKGROUND_NICE = 10;

/** This process's threads (Linux), or none where /proc is not there or not readable. */
function threadIds(): number[] {
  try {
    return [...Deno.readDirSync("/proc/self/task")].map((e) => Number(e.name)).filter(Number.isInteger);
  } catch {
    return [];
  }
}

/**
 * Lowers this process's CPU priority, all its threads; false where that is not allowed (no
 * --allow-sys, or refused). `set(id, priority)`: id 0 is the calling thread (or process).
 */
export function runInBackground(
  set: (id: number, priority: number) => void = setPriority,
  threads: () => number[] = threadIds,
): boolean {
  try {
    set(0, BACKGROUND_NICE);
  } catch {
    return false; // a convenience: the transfer runs at normal priority
  }
  for (const id of threads()) {
    try {
      set(id, BACKGROUND_NICE);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return true;
}
