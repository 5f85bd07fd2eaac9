/**
 * How fast bulk stream data may go while a game's datagrams flow on the same link (issue 16: a
 * file moving beside a game adds no more than a few milliseconds to its packets).
 *
 * Keeping little bulk data in flight (GAME_INFLIGHT in src/net/mux_stream.ts) bounds what a
 * datagram waits behind in the link, but not what it waits for elsewhere: a bottleneck queue on
 * the way (a home router's uplink), or both ends' event loops and CPUs, busy moving the file as
 * fast as they can. So, as LEDBAT does for background transfers (RFC 6817), the writer measures
 * the delay its bulk data causes and slows down to keep it small:
 *
 * - The mux sends a probe with its bulk data every PROBE_EVERY_MS (one at a time) and the other
 *   side echoes it at once; a probe waits where a game's datagram would. Its round trip minus the
 *   lowest round trip seen lately (the base, RFC 6817 §2.4.2; kept for BASE_HISTORY_MS, as routes
 *   change) is the queueing delay; the lowest of the last CURRENT_FILTER samples filters out a
 *   lone outlier (§3.4.2).
 * - Over PACE_TARGET_MS of queueing, the rate is cut in proportion to the overshoot (at most by
 *   half per sample); under it, the rate grows in proportion to the room left (§2.4.2's linear
 *   controller, on a rate rather than a window). The first cut starts from the throughput bulk
 *   data had until then; a rate that runs far ahead of what the writers actually send is dropped
 *   (no pacing) rather than left to grow without meaning (as RFC 7661 does for an idle window).
 * - The machine's CPUs count as a queue too (src/net/cpu_pressure.ts): a game waits for a CPU
 *   when the file's processes take them all, and that wait is in no probe's round trip. Where the
 *   share of time tasks waited for a CPU is known, over PRESSURE_TARGET counts as over the target.
 * - Bulk data is sent through a token bucket at that rate: `charge(bytes)` says how long to wait.
 *   The rate never goes below MIN_BULK_RATE: the file still moves.
 *
 * Pure: times are passed in (milliseconds, monotonic), so tests drive it with numbers.
 */

/** Queueing delay (ms) bulk data may add to a game's datagrams. */
export const PACE_TARGET_MS = 1;
/** The share of time tasks may wait for a CPU while a game plays. */
export const PRESSURE_TARGET = 0.3;
/** A probe goes with bulk data this often, while a game plays (one outstanding at a time). */
export const PROBE_EVERY_MS = 10;
/** The base round trip is the lowest seen over this long. */
export const BASE_HISTORY_MS = 10_000;
/** The current delay is the lowest of this many latest samples. */
export const CURRENT_FILTER = 3;
/** Bulk data never goes slower than this (bytes per ms: 256 KiB/s). */
export const MIN_BULK_RATE = 256 * 1024 / 1000;
/** Bytes sent at once when the bucket is full, and the most one charge takes (the writer slices). */
export const PACE_SLICE = 64 * 1024;
/**
 * Writes smaller than this are never paced: a chat line, a round-trip probe, a game's own TCP
 * messages are not what fills a queue, and holding them behind a file's debt would show a player
 * a round trip the link does not have.
 */
export const PACE_FROM = 16 * 1024;
/** A cut takes at most this share of the rate per sample. */
const MAX_CUT = 0.5;
/** Per sample with an empty queue, the rate grows by this share (less as the queue nears the target). */
const GROWTH = 0.05;
/** Throughput is measured over spans of at least this long (ms). */
const THROUGHPUT_SPAN_MS = 20;
/** Pacing stops once the rate is this many times what the writers actually send. */
const UNBOUND_AFTER = 2;
/** Base history buckets: the base is the lowest of the buckets of the last BASE_HISTORY_MS. */
const BASE_BUCKETS = 5;

export class BulkPacer {
  /** Bytes per ms; null while unpaced. */
  #rate: number | null = null;
  /** [bucket start, lowest round trip in it], oldest first. */
  #base: [number, number][] = [];
  #recent: number[] = [];
  #tokens = PACE_SLICE;
  #tokensAt = 0;
  /** Bytes charged since #spanStart, and the throughput of the last finished span (bytes per ms). */
  #spanBytes = 0;
  #spanStart = Number.NaN;
  #throughput = 0;

  /** Bytes per second bulk data is held to, or null when it is not paced. */
  get rate(): number | null {
    return this.#rate === null ? null : this.#rate * 1000;
  }

  /** The queueing delay (ms) the last sample showed, for the bench and tests. */
  lastQueueingMs = 0;

  /** The last CPU pressure's distance to its target (as `off` below), kept between its updates. */
  #pressureOff = 1;

  /**
   * A probe came back after `rttMs`, at `now`; `pressure` is the share of time tasks waited for a
   * CPU since the last one given (null: no new figure).
   */
  sample(rttMs: number, now: number, pressure: number | null = null): void {
    const bucket = BASE_HISTORY_MS / BASE_BUCKETS;
    const last = this.#base.at(-1);
    if (last && now - last[0] < bucket) last[1] = Math.min(last[1], rttMs);
    else this.#base.push([now, rttMs]);
    while (this.#base.length > 0 && now - this.#base[0][0] >= BASE_HISTORY_MS) this.#base.shift();
    this.#recent.push(rttMs);
    if (this.#recent.length > CURRENT_FILTER) this.#recent.shift();

    const base = Math.min(...this.#base.map((b) => b[1]));
    const queueing = Math.max(0, Math.min(...this.#recent) - base);
    this.lastQueueingMs = queueing;
    const delayOff = (PACE_TARGET_MS - queueing) / PACE_TARGET_MS; // 1: no queue; < 0: over the target
    if (pressure !== null) this.#pressureOff = Math.max(-2, (PRESSURE_TARGET - pressure) / PRESSURE_TARGET);
    const off = Math.min(delayOff, this.#pressureOff);
    // A pressure figure spans several probes: it cuts once, when it is new.
    if (delayOff < 0 || (pressure !== null && off < 0)) {
      const from = this.#rate ?? Math.max(this.#throughput, MIN_BULK_RATE);
      this.#rate = Math.max(MIN_BULK_RATE, from * (1 - Math.min(MAX_CUT, -off * MAX_CUT / 2)));
      this.#tokens = Math.min(this.#tokens, 0); // what was allowed before the cut is not
      this.#tokensAt = now;
      return;
    }
    if (this.#rate === null || off < 0) return;
    this.#refill(now);
    this.#rate *= 1 + GROWTH * off;
    if (this.#throughput > 0 && this.#rate > UNBOUND_AFTER * Math.max(this.#throughput, MIN_BULK_RATE)) {
      this.#rate = null;
    }
  }

  /**
   * Takes `bytes` of bulk data about to be sent at `now`; returns how many ms the writer waits
   * first (0: send now). Charges while unpaced too: they measure the throughput a first cut starts from.
   */
  charge(bytes: number, now: number): number {
    if (Number.isNaN(this.#spanStart)) this.#spanStart = now;
    this.#spanBytes += bytes;
    if (now - this.#spanStart >= THROUGHPUT_SPAN_MS) {
      this.#throughput = this.#spanBytes / (now - this.#spanStart);
      this.#spanBytes = 0;
      this.#spanStart = now;
    }
    if (this.#rate === null) return 0;
    this.#refill(now);
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : -this.#tokens / this.#rate;
  }

  /** Forget the rate: a new game (or the same after a pause) starts unpaced. */
  reset(): void {
    this.#rate = null;
    this.#recent = [];
    this.#pressureOff = 1;
    this.#tokens = PACE_SLICE;
    this.#spanBytes = 0;
    this.#spanStart = Number.NaN;
    this.#throughput = 0;
  }

  #refill(now: number): void {
    if (this.#rate !== null) {
      this.#tokens = Math.min(PACE_SLICE, this.#tokens + (now - this.#tokensAt) * this.#rate);
    }
    this.#tokensAt = now;
  }
}
