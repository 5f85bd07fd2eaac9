/**
 * Who is in the room (src/node/room.ts): every member reachable from us over links, directly or
 * through others. Each member floods its presence — whom it is linked to — and we keep the latest
 * one per member; a member is in the room when a path of links leads to it. A link counts only
 * when both its ends say so (or when it is one of ours), so a member that vanished without a word
 * leaves the room as soon as its neighbours say it is gone, and nobody can add a link alone.
 * A presence not renewed within `expireMs` is forgotten. Pure: the clock is passed in.
 */
import type { HereFrame } from "./room_wire.ts";
import { MAX_ORIGINS } from "./room_order.ts";

/** Presences are renewed this often (a safety net: links going down are told at once). */
export const HERE_EVERY_MS = 60_000;
/** A presence not renewed for this long is forgotten. */
export const HERE_EXPIRE_MS = 3 * HERE_EVERY_MS;

interface Presence {
  run: string;
  since: number;
  v: number;
  links: Set<string>;
  /** The sequence number of the member's next line when it said this. */
  next: number;
  bye: boolean;
  heard: number;
  frame: HereFrame;
}

export interface RosterOptions {
  self: string;
  now: () => number;
  expireMs?: number;
  maxOrigins?: number;
}

export class Roster {
  readonly #presence = new Map<string, Presence>();
  #direct = new Set<string>();

  constructor(readonly opts: RosterOptions) {}

  /**
   * Takes a presence: true when it is newer than what we hold (then it is forwarded). `own`: it
   * came over the member's own link, which speaks for its current run whatever its clock says.
   */
  admit(f: HereFrame, own = false): boolean {
    if (f.o === this.opts.self) return false;
    const old = this.#presence.get(f.o);
    if (old) {
      // A later run of the member (it started again) wins; within a run, a later version.
      const newer = f.r === old.run
        ? f.v > old.v
        : own || f.since > old.since || (f.since === old.since && f.r > old.run);
      if (!newer) return false;
      this.#presence.delete(f.o);
    }
    this.#presence.set(f.o, {
      run: f.r,
      since: f.since,
      v: f.v,
      links: new Set(f.l),
      next: f.n,
      bye: f.bye,
      heard: this.opts.now(),
      frame: f,
    });
    const max = this.opts.maxOrigins ?? MAX_ORIGINS;
    if (this.#presence.size > max) this.#presence.delete(this.#presence.keys().next().value!);
    return true;
  }

  /** Our own links now. */
  setDirect(users: Iterable<string>): void {
    this.#direct = new Set(users);
  }

  /** Forgets presences not renewed in time. */
  expire(): void {
    const now = this.opts.now();
    const max = this.opts.expireMs ?? HERE_EXPIRE_MS;
    for (const [user, p] of this.#presence) if (now - p.heard >= max) this.#presence.delete(user);
  }

  /** The latest presence of every member we know (a newly linked member is told them). */
  frames(): HereFrame[] {
    return [...this.#presence.values()].map((p) => p.frame);
  }

  /**
   * Whether `origin` sent its line number `seq` to `user` itself: its latest presence lists
   * `user`, and the line was said after that presence (so `user` was its neighbour by then).
   */
  sentDirect(origin: string, seq: number, user: string): boolean {
    const p = this.#presence.get(origin);
    return p !== undefined && !p.bye && p.links.has(user) && seq >= p.next;
  }

  /** Whether `user` said it leaves (its last presence was a goodbye). */
  left(user: string): boolean {
    return this.#presence.get(user)?.bye ?? false;
  }

  /** Everyone reachable over links, sorted (never ourselves). */
  members(): string[] {
    const self = this.opts.self;
    const linked = (a: string, b: string): boolean => {
      const pa = this.#presence.get(a);
      if (!pa || pa.bye || !pa.links.has(b)) return false;
      if (b === self) return this.#direct.has(a);
      const pb = this.#presence.get(b);
      return pb !== undefined && !pb.bye && pb.links.has(a);
    };
    const seen = new Set<string>();
    const queue: string[] = [];
    for (const d of this.#direct) {
      if (this.#presence.get(d)?.bye) continue;
      seen.add(d);
      queue.push(d);
    }
    while (queue.length > 0) {
      const u = queue.shift()!;
      for (const v of this.#presence.get(u)?.links ?? []) {
        if (v === self || seen.has(v) || !linked(u, v)) continue;
        seen.add(v);
        queue.push(v);
      }
    }
    return [...seen].sort();
  }
}
