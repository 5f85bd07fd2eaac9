/**
 * Loop prevention for replayed LAN datagrams: what we replay on this machine comes back to our own
 * listener (multicast loopback, broadcast to ourselves); it must never be carried to the group
 * again, or two members would echo a game's announcement between them for ever. A datagram is
 * "ours" when it comes from our replay socket's address, or when the same bytes were replayed
 * within the window (a copy that came back through another interface has another source).
 */
export const LOOP_WINDOW_MS = 5_000;
const MAX_REMEMBERED = 1024;

export class LoopGuard {
  readonly #replayed = new Map<string, number>();
  readonly #sources = new Set<string>();

  constructor(readonly now: () => number = Date.now, readonly windowMs = LOOP_WINDOW_MS) {}

  /** A socket we replay from ("address:port"): whatever it sends is ours. */
  addSource(address: string, port: number): void {
    this.#sources.add(`${address}:${port}`);
  }

  /** We are about to replay these bytes here. */
  replayed(bytes: Uint8Array): void {
    if (this.#replayed.size >= MAX_REMEMBERED) this.#forgetOld(true);
    this.#replayed.set(digest(bytes), this.now());
  }

  /** Whether a datagram heard here was our own replay (never to be carried again). */
  isEcho(bytes: Uint8Array, from: { address: string; port: number }): boolean {
    if (this.#sources.has(`${from.address}:${from.port}`)) return true;
    if (this.#sources.has(`0.0.0.0:${from.port}`) && isLocal(from.address)) return true;
    const at = this.#replayed.get(digest(bytes));
    return at !== undefined && this.now() - at <= this.windowMs;
  }

  #forgetOld(evictOne: boolean): void {
    const now = this.now();
    for (const [k, at] of this.#replayed) if (now - at > this.windowMs) this.#replayed.delete(k);
    if (evictOne && this.#replayed.size >= MAX_REMEMBERED) {
      this.#replayed.delete(this.#replayed.keys().next().value!);
    }
  }
}

function isLocal(address: string): boolean {
  return address.startsWith("127.");
}

/** FNV-1a over the bytes and the length: cheap, and a collision only drops one announcement. */
function digest(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (const x of b) h = Math.imul(h ^ x, 0x01000193);
  return `${b.length}:${h >>> 0}`;
}
