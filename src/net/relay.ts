/**
 * Relaying, the last resort (design: "Relay"): when two members find no direct path (both behind
 * symmetric NATs, or UDP blocked), they link through a third member both of them are linked to.
 *
 *   A ──"relay" stream {to: B's link key}──▶ R ──"relay-in" stream {from: A's key}──▶ B
 *
 * R joins the two streams byte for byte. A and B then run their own Noise handshake through it, so
 * R forwards ciphertext only: it learns that A and B talk and how much, never what. R limits each
 * pair's rate and how many pairs it carries at once. The two members keep trying to go direct
 * while they use the relay (the node upgrades the link when a direct path authenticates).
 */
import { b64u, fromB64u } from "../protocol/bytes.ts";
import { LinkError } from "../protocol/noise.ts";
import type { Mux, MuxStream } from "./mux.ts";
import type { ByteStream } from "./secure_channel.ts";

export const RELAY_PROTOCOL = "relay";
export const RELAY_IN_PROTOCOL = "relay-in";
/** The relay's first byte to the requester: the other side's stream is open. */
const SPLICED = 0x01;
/** How long a relay holds a request for a member that is not linked to it yet (it may be on its way). */
export const RELAY_WAIT_MS = 20_000;
/** Pairs one relay carries at once. */
export const MAX_RELAYED_PAIRS = 32;
/** Bytes per second per direction of one pair (a token bucket with one second of burst). */
export const RELAY_RATE = 8 * 1024 * 1024;

/** A byte stream over a mux stream, for the Noise handshake and SecureChannel. */
export class MuxByteStream implements ByteStream {
  #rest: Uint8Array | null;

  /** `initial`: bytes already read from the stream that belong to the caller. */
  constructor(readonly stream: MuxStream, initial?: Uint8Array) {
    this.#rest = initial && initial.length > 0 ? initial : null;
  }

  async read(p: Uint8Array): Promise<number | null> {
    let chunk = this.#rest;
    this.#rest = null;
    if (!chunk) {
      try {
        chunk = await this.stream.read();
      } catch {
        return null;
      }
      if (chunk === null) return null;
      chunk = chunk.slice(); // valid only until the next read
    }
    const n = Math.min(p.length, chunk.length);
    p.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#rest = chunk.subarray(n);
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    await this.stream.write(p.slice()); // the mux keeps a view until sealed; the caller reuses p
    return p.length;
  }

  closeWrite(): Promise<void> {
    this.stream.closeWrite();
    return Promise.resolve();
  }

  close(): void {
    this.stream.reset("closed");
  }
}

/** What a relay needs to know about the node's links. */
export interface RelayLinks {
  /** The mux of the link to the member holding `key`, if any. */
  muxFor(key: Uint8Array): Mux | undefined;
  /** Resolves with that mux once such a link exists, or undefined after `ms`. */
  whenLinked(key: Uint8Array, ms: number): Promise<Mux | undefined>;
}

class TokenBucket {
  #tokens: number;
  #at = performance.now();
  constructor(readonly rate: number) {
    this.#tokens = rate;
  }
  async take(n: number): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.#tokens = Math.min(this.rate, this.#tokens + ((now - this.#at) / 1000) * this.rate);
      this.#at = now;
      if (this.#tokens >= n || this.#tokens >= this.rate) {
        this.#tokens -= n;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((n - this.#tokens) / this.rate) * 1000)));
    }
  }
}

/** Copies a → b until a ends; the first failure resets both. */
async function pump(a: MuxStream, b: MuxStream, bucket: TokenBucket): Promise<void> {
  try {
    for (let chunk = await a.read(); chunk !== null; chunk = await a.read()) {
      await bucket.take(chunk.length);
      await b.write(chunk.slice());
    }
    b.closeWrite();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    a.reset(why);
    b.reset(why);
  }
}

export interface RelayServiceOptions {
  links: RelayLinks;
  /** For the log: who asked whom. */
  onRelay?: (e: { from: string; to: string; outcome: "spliced" | "refused"; reason?: string }) => void;
  rate?: number;
  maxPairs?: number;
  waitMs?: number;
}

/** The relay side: takes "relay" streams from linked members and splices them to their target. */
export class RelayService {
  #pairs = 0;

  constructor(readonly opts: RelayServiceOptions) {}

  get pairs(): number {
    return this.#pairs;
  }

  /** Handles a "relay" stream `from` a linked member (whose link key is `fromKey`). */
  async accept(stream: MuxStream, from: string, fromKey: Uint8Array): Promise<void> {
    const meta = stream.meta as { to?: unknown; user?: unknown } | undefined;
    const to = typeof meta?.to === "string" ? fromB64u(meta.to) : undefined;
    const toUser = typeof meta?.user === "string" ? meta.user.slice(0, 64) : "?";
    const refuse = (reason: string) => {
      stream.reset(reason);
      this.opts.onRelay?.({ from, to: toUser, outcome: "refused", reason });
    };
    if (!to || to.length !== 32) return refuse("a relay request must name the member's link key");
    if (this.#pairs >= (this.opts.maxPairs ?? MAX_RELAYED_PAIRS)) return refuse("this relay is full");
    this.#pairs++;
    try {
      const mux = this.opts.links.muxFor(to) ??
        await this.opts.links.whenLinked(to, this.opts.waitMs ?? RELAY_WAIT_MS);
      if (!mux) return refuse(`${toUser} is not linked to this relay`);
      let out: MuxStream;
      try {
        out = mux.open(RELAY_IN_PROTOCOL, { from: b64u(fromKey), user: from });
      } catch (err) {
        return refuse(`cannot reach ${toUser}: ${(err as Error).message}`);
      }
      await stream.write(Uint8Array.of(SPLICED));
      this.opts.onRelay?.({ from, to: toUser, outcome: "spliced" });
      const rate = this.opts.rate ?? RELAY_RATE;
      await Promise.all([pump(stream, out, new TokenBucket(rate)), pump(out, stream, new TokenBucket(rate))]);
    } catch (err) {
      refuse((err as Error).message);
    } finally {
      this.#pairs--;
    }
  }
}

/**
 * The requesting side: asks a relay's mux for a stream to `target` and waits for the splice.
 * Rejects with the relay's reason when it cannot.
 */
export async function openRelayed(
  mux: Mux,
  target: { user: string; linkKey: Uint8Array },
  timeoutMs: number,
): Promise<MuxByteStream> {
  const stream = mux.open(RELAY_PROTOCOL, { to: b64u(target.linkKey), user: target.user });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const first = await Promise.race([
      stream.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new LinkError(`The relay did not reach ${target.user} in time.`, "timeout")),
          timeoutMs,
        );
      }),
    ]);
    if (first === null || first.length < 1 || first[0] !== SPLICED) {
      throw new LinkError(`The relay closed the way to ${target.user}.`, "connect");
    }
    return new MuxByteStream(stream, first.slice(1));
  } catch (err) {
    stream.reset("given up");
    if (err instanceof LinkError) throw err;
    throw new LinkError(
      `The relay refused: ${(err as Error).message.replace(/^The stream was reset: /, "")}`,
      "connect",
      {
        cause: err,
      },
    );
  } finally {
    clearTimeout(timer);
  }
}
