/**
 * The one chat room of a group (design: "chat is flooded over links with message ids"): a line
 * said on any node reaches every member linked to anyone in the group, not only its own links.
 * It lives in the node, not in the chat app, because a node forwards the room for its links even
 * when its person runs `join` without `chat`; the chat app only says and hears (src/apps/chat.ts).
 *
 * One "room" stream each way per link carries frames (src/node/room_wire.ts). A new frame is
 * passed on to every other link with one hop less; copies that come again by other paths are
 * dropped, lines of one sender are shown in its order (src/node/room_order.ts), and presences
 * say who is in the room (src/node/room_roster.ts).
 *
 * Hostile members hold the network key, so the room bounds what one can do: frames from each link
 * go through a token bucket, a frame naming a member we are linked to is taken only from that
 * member's own link (a neighbour cannot put words in its mouth), ids far ahead or from the future
 * are refused, every table is capped, and a slow reader's queue is capped.
 *
 * "Only its own link" starts once the member's link has told us its run and the number of its
 * next line (its presence over that link, listing us): lines it said before, which went out
 * through others while the link was being made, still come through them. A line from a member
 * we hold no link to is hearsay from `via`, and says so.
 */
import { type Random, systemRandom } from "../protocol/bytes.ts";
import type { MuxStream } from "../net/mux.ts";
import type { AppEvent, AppSink, LinkApp, Member } from "../apps/app_host.ts";
import { cleanChatText, type RoomHost } from "../apps/chat.ts";
import { readLines } from "./control.ts";
import { LineQueue } from "../net/line_queue.ts";
import { type Arrival, SenderOrder } from "./room_order.ts";
import { HERE_EVERY_MS, Roster } from "./room_roster.ts";
import { TokenBucket } from "./token_bucket.ts";
import {
  decodeFrame,
  encodeFrame,
  type HereFrame,
  MAX_HOPS,
  MAX_LISTED_LINKS,
  MAX_TEXT_CHARS,
  ROOM_PROTOCOL,
  type RoomFrame,
  type SayFrame,
} from "./room_wire.ts";

/** Frames taken from one link: this many a second, after a burst of ROOM_BURST. */
export const ROOM_FRAMES_PER_SECOND = 50;
export const ROOM_BURST = 500;
/** A frame stamped this far in the future (by the origin's clock) is refused. */
export const MAX_CLOCK_AHEAD_MS = 10 * 60_000;
/** Lines said before anyone is linked, kept for the first who comes. */
export const MAX_PENDING_LINES = 100;
/** A member we could not reach is named as unreachable if the room does not bring it this soon. */
export const UNREACHABLE_GRACE_MS = 10_000;
/** Members waiting to be named unreachable, at most (dial failures a lying member could multiply). */
const MAX_HINTS = 256;
/** How often the node calls tick() (gaps, presence renewal, unreachable members). */
export const ROOM_TICK_MS = 1_000;

export interface RoomOptions {
  user: string;
  now?: () => number;
  random?: Random;
  /** A line for the node's log (frames refused from a flooding member). */
  log?: (message: string) => void;
}

interface Neighbour {
  member: Member;
  out: LineQueue;
  bucket: TokenBucket;
  dropped: number;
  /** Once its own link spoke: its run, and its first line said with us linked. */
  speaks?: { run: string; from: number };
}

export class RoomService implements LinkApp, RoomHost {
  readonly protocols = [ROOM_PROTOCOL];
  readonly #o: RoomOptions;
  readonly #now: () => number;
  readonly #run: string;
  readonly #since: number;
  #seq = 0;
  #version = 0;
  #lastHere = -Infinity;
  readonly #neighbours = new Map<string, Neighbour>();
  readonly #order: SenderOrder;
  readonly #roster: Roster;
  readonly #listeners = new Set<AppSink>();
  #members: string[] = [];
  #pending: SayFrame[] = [];
  /** Members a dial could not reach: when, and why. */
  readonly #hints = new Map<string, { at: number; reason: string }>();
  #timer?: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(o: RoomOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    const random = o.random ?? systemRandom;
    this.#run = [...random(8)].map((b) => b.toString(16).padStart(2, "0")).join("");
    this.#since = this.#now();
    this.#order = new SenderOrder({ now: this.#now });
    this.#roster = new Roster({ self: o.user, now: this.#now });
  }

  /** Who is in the room now (never ourselves). */
  get members(): string[] {
    return [...this.#members];
  }

  /** Calls tick() now and then (tests call tick() with their own clock instead). */
  start(): void {
    this.#timer ??= setInterval(() => this.tick(), ROOM_TICK_MS);
    Deno.unrefTimer(this.#timer);
  }

  // ─── RoomHost: what the chat app uses ────────────────────────────────────────────────────

  subscribe(listener: AppSink): () => void {
    this.#listeners.add(listener);
    listener({ event: "room", members: this.members });
    // A chat that starts while others are here hears them join, as if it had been there first.
    for (const u of this.#members) listener({ event: "joined", peer: u, direct: this.#neighbours.has(u) });
    return () => void this.#listeners.delete(listener);
  }

  say(text: string): void {
    if (this.#closed) return;
    const frame: SayFrame = {
      k: "say",
      o: this.#o.user,
      r: this.#run,
      h: MAX_HOPS,
      at: this.#now(),
      s: this.#seq++,
      t: cleanChatText(text).slice(0, MAX_TEXT_CHARS),
    };
    this.#emit({ event: "said", peer: frame.o, text: frame.t, sent: iso(frame.at) });
    if (this.#neighbours.size === 0) {
      this.#pending.push(frame);
      if (this.#pending.length > MAX_PENDING_LINES) this.#pending.shift();
      return;
    }
    this.#flood(frame);
  }

  // ─── What the node tells the room ────────────────────────────────────────────────────────

  /** A dial to `user` failed: if the room does not bring it soon, the chat is told. */
  unreachable(user: string, reason: string): void {
    if (user === this.#o.user || this.#members.includes(user) || this.#hints.has(user)) return;
    if (this.#hints.size >= MAX_HINTS) return;
    this.#hints.set(user, { at: this.#now(), reason });
  }

  /** Gaps waited on long enough, presences to renew or forget, members to name unreachable. */
  tick(): void {
    if (this.#closed) return;
    const now = this.#now();
    this.#show(this.#order.due());
    this.#roster.expire();
    if (this.#neighbours.size > 0 && now - this.#lastHere >= HERE_EVERY_MS) this.#publishHere(false);
    this.#update(new Map());
    for (const [user, h] of this.#hints) {
      if (now - h.at < UNREACHABLE_GRACE_MS) continue;
      this.#hints.delete(user);
      if (this.#members.includes(user)) continue;
      this.#emit({
        event: "unreachable",
        peer: user,
        reason:
          `${user} is in the group but not reachable: neither we nor anyone in the room is linked to it (${
            h.reason.replace(/\.$/, "")
          })`,
      });
    }
  }

  /** Says goodbye on every link (the links close right after). */
  close(): void {
    if (this.#closed) return;
    if (this.#neighbours.size > 0) this.#publishHere(true);
    this.#closed = true;
    clearInterval(this.#timer);
    this.#listeners.clear();
  }

  // ─── LinkApp: the node's links ───────────────────────────────────────────────────────────

  added(m: Member): void {
    if (this.#closed) return;
    let out: LineQueue;
    try {
      out = new LineQueue(m.mux.open(ROOM_PROTOCOL));
    } catch {
      return; // the link ended already
    }
    const n: Neighbour = {
      member: m,
      out,
      bucket: new TokenBucket(ROOM_FRAMES_PER_SECOND, ROOM_BURST, this.#now),
      dropped: 0,
    };
    this.#neighbours.set(m.user, n);
    // The newcomer (and the part of the group behind it) learns who is here from us.
    for (const f of this.#roster.frames()) if (f.o !== m.user) out.send(encodeFrame(hop(f)));
    this.#publishHere(false);
    const pending = this.#pending;
    this.#pending = [];
    for (const f of pending) this.#flood(f);
    this.#update(new Map());
    void m.closed.then((reason) => {
      if (this.#neighbours.get(m.user) !== n || this.#closed) return;
      this.#neighbours.delete(m.user);
      this.#publishHere(false);
      this.#update(new Map([[m.user, reason ?? "the link closed"]]));
    });
  }

  stream(stream: MuxStream, m: Member): void {
    void (async () => {
      try {
        for await (const line of readLines(stream)) this.receive(line, m.user);
      } catch {
        // the link ended
      }
    })();
  }

  /** One frame from the link of `from` (a user we are linked to). */
  receive(raw: unknown, from: string): void {
    const n = this.#neighbours.get(from);
    if (!n || this.#closed) return;
    if (!n.bucket.take()) {
      if (n.dropped++ % 1000 === 0) {
        this.#o.log?.(`room: dropping frames from ${from}, more than ${ROOM_FRAMES_PER_SECOND} a second`);
      }
      return;
    }
    const f = decodeFrame(raw);
    if (!f || f.o === this.#o.user) return;
    if (f.o === from) {
      if (f.k === "here" && f.l.includes(this.#o.user) && n.speaks?.run !== f.r) {
        n.speaks = { run: f.r, from: f.n };
      }
    } else {
      // Linked to the origin: only its own link speaks for it, from the line it said linked to us on.
      const speaks = this.#neighbours.get(f.o)?.speaks;
      if (speaks && (f.k === "here" || f.r !== speaks.run || f.s >= speaks.from)) return;
    }
    const ahead = this.#now() + MAX_CLOCK_AHEAD_MS;
    if (f.at > ahead || (f.k === "here" && f.since > ahead)) return;
    if (f.k === "say") {
      const { verdict, due } = this.#order.accept({ frame: f, via: from });
      if (verdict === "new") this.#forward(f, from);
      this.#show(due);
      return;
    }
    if (!this.#roster.admit(f, f.o === from)) return;
    this.#forward(f, from);
    this.#update(new Map());
  }

  // ─── Inside ──────────────────────────────────────────────────────────────────────────────

  #publishHere(bye: boolean): void {
    const f: HereFrame = {
      k: "here",
      o: this.#o.user,
      r: this.#run,
      h: MAX_HOPS,
      at: this.#now(),
      since: this.#since,
      v: this.#version++,
      l: [...this.#neighbours.keys()].slice(0, MAX_LISTED_LINKS),
      n: this.#seq,
      bye,
    };
    this.#lastHere = f.at;
    this.#flood(f);
  }

  #flood(f: RoomFrame): void {
    const line = encodeFrame(f);
    for (const n of this.#neighbours.values()) n.out.send(line);
  }

  #forward(f: RoomFrame, from: string): void {
    if (f.h === 0) return;
    const line = encodeFrame(hop(f));
    for (const [user, n] of this.#neighbours) {
      if (user === from || user === f.o) continue;
      // The origin sent it to that member itself, who would drop our copy: in a full mesh a line
      // costs one frame per member, not one per pair.
      if (f.k === "here" ? f.l.includes(user) : this.#roster.sentDirect(f.o, f.s, user)) continue;
      n.out.send(line);
    }
  }

  #show(arrivals: Arrival[]): void {
    for (const { frame: f, via } of arrivals) {
      this.#emit({
        event: "chat",
        peer: f.o,
        text: cleanChatText(f.t),
        sent: iso(f.at),
        ...(via !== f.o ? { via } : {}),
      });
    }
  }

  /** Recomputes who is in the room; `reasons`: why a member's link just ended. */
  #update(reasons: Map<string, string>): void {
    this.#roster.setDirect(this.#neighbours.keys());
    const now = this.#roster.members();
    const before = new Set(this.#members);
    const after = new Set(now);
    let changed = false;
    for (const u of now) {
      if (before.has(u)) continue;
      changed = true;
      this.#hints.delete(u);
      this.#emit({ event: "joined", peer: u, direct: this.#neighbours.has(u) });
    }
    for (const u of this.#members) {
      if (after.has(u)) continue;
      changed = true;
      const reason = this.#roster.left(u) ? "left the group" : reasons.get(u) ?? "no longer reachable";
      this.#emit({ event: "left", peer: u, reason });
    }
    this.#members = now;
    if (changed) this.#emit({ event: "room", members: this.members });
  }

  #emit(e: AppEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure is its own
      }
    }
  }
}

/** The frame as passed on: one hop less. */
function hop<F extends RoomFrame>(f: F): F {
  return { ...f, h: Math.max(0, f.h - 1) };
}

const iso = (ms: number) => new Date(ms).toISOString();
