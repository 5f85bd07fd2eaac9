/**
 * How much of the time this machine's tasks waited for a CPU (Linux's pressure stall information,
 * /proc/pressure/cpu, "some": at least one runnable task was waiting). A game on a machine whose
 * CPUs are all taken waits too, however little queues on the link: the bulk pacer
 * (src/net/bulk_pacer.ts) slows a transfer until the CPUs have time to spare again.
 *
 * Elsewhere (macOS, Windows, a Linux without PSI, no read permission) there is no such figure:
 * `CpuPressure.read` returns null and pacing follows the link's delay alone.
 */

const PSI_FILE = "/proc/pressure/cpu";

/** Reads the cumulative stall time (µs); null when there is none to read. */
export type StallReader = () => number | null;

/** The "some … total=" figure (µs) of a PSI file's text; null when it has none. */
export function parseCpuStall(text: string): number | null {
  const m = /^some .*\btotal=(\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** This machine's cumulative CPU stall time (µs), from /proc/pressure/cpu; null where there is none. */
export function readCpuStall(): number | null {
  try {
    return parseCpuStall(Deno.readTextFileSync(PSI_FILE));
  } catch {
    return null;
  }
}

/** The share of wall time (0…1) tasks waited for a CPU between two reads. */
export class CpuPressure {
  #last: { at: number; stall: number } | null = null;
  #works = true;

  constructor(readonly read: StallReader = readCpuStall) {}

  /** The share since the previous call (null on the first call, or where there is no figure). */
  sample(now: number): number | null {
    if (!this.#works) return null;
    const stall = this.read();
    if (stall === null) {
      this.#works = false; // not there now: not there later either
      return null;
    }
    const last = this.#last;
    this.#last = { at: now, stall };
    if (!last || now <= last.at) return null;
    return Math.min(1, Math.max(0, (stall - last.stall) / 1000 / (now - last.at)));
  }
}
