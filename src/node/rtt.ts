/**
 * Round-trip times of the links, measured all along (issue 16, "latency you can see"): every node
 * echoes "rtt" streams, and pings each member over one such stream every RTT_EVERY_MS; the member's
 * route then shows a smoothed round trip (as TCP's SRTT, RFC 6298 §2: 7/8 old + 1/8 new), which
 * `peers` and `status` print. `mailmeet ping USER` uses the same echo.
 *
 * Wire: 8-byte probes (u32 sequence, u32 spare), echoed unchanged. The measuring side keeps the
 * send times; the echoing side keeps nothing.
 */
import type { MuxStream } from "../net/mux.ts";

export const RTT_PROTOCOL = "rtt";
export const RTT_EVERY_MS = 5_000;
/** A round trip is told again (an "rtt" event) when it moved by this much and this share. */
export const RTT_TELL_MS = 1;
export const RTT_TELL_SHARE = 0.2;
export const PROBE_BYTES = 8;
/** Probes buffered per echo stream at most before the echo gives up on a misbehaving member. */
const MAX_PENDING = 64 * PROBE_BYTES;

/** RFC 6298 §2.3: SRTT ← 7/8 SRTT + 1/8 R′ (the first sample is taken as it is). */
export function smoothRtt(previous: number | undefined, sample: number): number {
  return previous === undefined ? sample : previous * 7 / 8 + sample / 8;
}

/** Echoes every probe of an incoming "rtt" stream back, in whole probes. */
export async function echoProbes(stream: MuxStream): Promise<void> {
  let pending = new Uint8Array(0);
  try {
    for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
      const all = new Uint8Array(pending.length + chunk.length);
      all.set(pending);
      all.set(chunk, pending.length);
      const whole = all.length - (all.length % PROBE_BYTES);
      if (whole > 0) await stream.write(all.slice(0, whole));
      pending = all.slice(whole);
      if (pending.length > MAX_PENDING) return stream.reset("not rtt probes");
    }
    stream.closeWrite();
  } catch {
    // the link ended
  }
}

export function probe(seq: number): Uint8Array {
  const b = new Uint8Array(PROBE_BYTES);
  new DataView(b.buffer).setUint32(0, seq);
  return b;
}

/**
 * Sends probes on one "rtt" stream and matches the echoes: `send(seq)` then, for each echo,
 * `onRtt(seq, ms)`. Times come from `now` (tests inject a clock).
 */
export class RttProber {
  readonly #sent = new Map<number, number>();
  #seq = 0;
  #reading: Promise<void>;

  constructor(
    readonly stream: MuxStream,
    readonly onRtt: (seq: number, ms: number) => void,
    readonly now: () => number = () => performance.now(),
  ) {
    this.#reading = this.#read();
  }

  /** Sends the next probe; returns its sequence number. */
  send(): number {
    const seq = this.#seq++;
    this.#sent.set(seq, this.now());
    if (this.#sent.size > 64) this.#sent.delete(this.#sent.keys().next().value!);
    this.stream.write(probe(seq)).catch(() => {});
    return seq;
  }

  /** Resolves when the echo stream ended (the link went, or the member does not echo). */
  get ended(): Promise<void> {
    return this.#reading;
  }

  async #read(): Promise<void> {
    let pending = new Uint8Array(0);
    try {
      for (let chunk = await this.stream.read(); chunk !== null; chunk = await this.stream.read()) {
        const all = new Uint8Array(pending.length + chunk.length);
        all.set(pending);
        all.set(chunk, pending.length);
        let off = 0;
        for (; off + PROBE_BYTES <= all.length; off += PROBE_BYTES) {
          const seq = new DataView(all.buffer, off).getUint32(0);
          const at = this.#sent.get(seq);
          if (at === undefined) continue;
          this.#sent.delete(seq);
          this.onRtt(seq, this.now() - at);
        }
        pending = all.slice(off);
      }
    } catch {
      // reset: an older member that does not echo, or the link ended
    }
  }

  close(): void {
    this.stream.closeWrite();
  }
}
