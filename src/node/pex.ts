/**
 * Peer exchange over links (design: "The node keeps the group whole without more mail"): linked
 * members tell each other how to reach themselves and whom they are linked to, so a group in
 * which everyone reached one member completes its mesh in seconds, without a mail.
 *
 * One "pex" stream each way per link, JSON lines:
 *  - {t:"self", e}: how to reach the sender (its candidates, its link key — which must be the key
 *    the link's handshake proved, else the line is ignored);
 *  - {t:"known", list}: the members the sender is linked to, as each described itself ("self");
 *  - {t:"connect", to}: "introduce me to `to`": the receiver, linked to both, passes
 *  - {t:"connect-from", e}: "this member wants to link with you" to `to`.
 * Both sides of a new pair then reach out at the same moment — what punching through two NATs
 * needs — exactly as after a host's introduction by mail. Only the side with the smaller user id
 * asks, so a pair is introduced once. A lying member can make others dial, but never dial a wrong
 * key silently: every link is still the Noise handshake against the key described.
 */
import { b64u, fromB64u } from "../protocol/bytes.ts";
import { decodeCandidates, decodeMapping, encodeCandidates } from "../protocol/candidate.ts";
import { isValidUserId, type PeerEntry } from "../protocol/messages.ts";
import type { MuxStream } from "../net/mux.ts";
import type { LinkApp, Member } from "../apps/app_host.ts";
import { readLines } from "./control.ts";
import { writeLine } from "../net/line_queue.ts";

export const PEX_PROTOCOL = "pex";
/** Members listed in one "known" line at most. */
const MAX_KNOWN = 64;
/** A changed set of links is told to everyone after this pause (changes come in bursts). */
const TELL_AFTER_MS = 500;
/** One introduction per pair and this long. */
const ASK_AGAIN_MS = 60_000;

export interface PexOptions {
  user: string;
  /** Our own entry as of now. */
  self: () => PeerEntry;
  /** Reach `entry` (both sides do at once); the node's dialer and links. */
  dial: (entry: PeerEntry) => void;
  isLinked: (user: string) => boolean;
  blocked: ReadonlySet<string>;
  onLearn?: (entry: PeerEntry, from: string) => void;
}

interface Linked {
  member: Member & { key?: Uint8Array };
  out?: MuxStream;
  /** How the member described itself over this link. */
  self?: PeerEntry;
}

export function entryToWire(e: PeerEntry): Record<string, unknown> {
  return {
    u: e.user,
    h: e.host,
    p: e.port,
    k: b64u(e.linkKey),
    c: encodeCandidates(e.candidates),
    m: e.mapping,
    y: e.relay ? 1 : 0,
  };
}

export function entryFromWire(w: unknown, now: number): PeerEntry | undefined {
  if (typeof w !== "object" || w === null) return undefined;
  const o = w as Record<string, unknown>;
  try {
    const key = typeof o.k === "string" ? fromB64u(o.k) : undefined;
    if (!isValidUserId(o.u) || !key || key.length !== 32) return undefined;
    const candidates = decodeCandidates(o.c);
    const first = candidates.find((c) => c.transport === "tcp") ?? candidates[0];
    return {
      user: o.u,
      host: typeof o.h === "string" ? o.h : first?.host ?? "0.0.0.0",
      port: Number.isInteger(o.p) ? o.p as number : first?.port ?? 1,
      linkKey: key,
      seen: now,
      flagged: false,
      candidates,
      mapping: decodeMapping(o.m),
      relay: o.y === 1,
      role: "peer",
    };
  } catch {
    return undefined;
  }
}

export class PeerExchange implements LinkApp {
  readonly protocols = [PEX_PROTOCOL];
  readonly #linked = new Map<string, Linked>();
  readonly #asked = new Map<string, number>();
  #timer?: ReturnType<typeof setTimeout>;

  constructor(readonly opts: PexOptions) {}

  added(m: Member): void {
    const l: Linked = { member: m };
    this.#linked.set(m.user, l);
    try {
      l.out = m.mux.open(PEX_PROTOCOL);
      writeLine(l.out, { t: "self", e: entryToWire(this.opts.self()) });
      writeLine(l.out, { t: "known", list: this.#known(m.user) });
    } catch {
      // the link ended already
    }
    void m.closed.then(() => {
      if (this.#linked.get(m.user) === l) this.#linked.delete(m.user);
      this.#tellSoon();
    });
    this.#tellSoon();
  }

  stream(stream: MuxStream, m: Member): void {
    void (async () => {
      try {
        for await (const line of readLines(stream)) this.#line(line, m);
      } catch {
        // the link ended
      }
    })();
  }

  close(): void {
    clearTimeout(this.#timer);
  }

  #line(line: Record<string, unknown>, m: Member & { key?: Uint8Array }): void {
    const from = this.#linked.get(m.user);
    if (!from || from.member !== m) return;
    const now = Date.now();
    switch (line.t) {
      case "self": {
        const e = entryFromWire(line.e, now);
        // Only what the handshake proved: its user id and its key.
        if (!e || e.user !== m.user || (m.key && b64u(m.key) !== b64u(e.linkKey))) return;
        from.self = e;
        this.opts.onLearn?.(e, m.user);
        this.#tellSoon();
        return;
      }
      case "known": {
        if (!Array.isArray(line.list)) return;
        for (const raw of line.list.slice(0, MAX_KNOWN)) {
          const e = entryFromWire(raw, now);
          if (!e || e.user === this.opts.user || this.opts.blocked.has(e.user)) continue;
          this.opts.onLearn?.(e, m.user);
          if (this.opts.isLinked(e.user) || this.opts.user > e.user) continue;
          const id = `${m.user} ${e.user}`;
          if (now - (this.#asked.get(id) ?? 0) < ASK_AGAIN_MS) continue;
          this.#asked.set(id, now);
          // Ask the member we share to introduce us, and reach out ourselves at once.
          if (from.out) writeLine(from.out, { t: "connect", to: e.user });
          this.opts.dial(e);
        }
        return;
      }
      case "connect": {
        if (typeof line.to !== "string" || !from.self) return;
        const target = this.#linked.get(line.to);
        if (target?.out) writeLine(target.out, { t: "connect-from", e: entryToWire(from.self) });
        return;
      }
      case "connect-from": {
        const e = entryFromWire(line.e, now);
        if (!e || e.user === this.opts.user || this.opts.blocked.has(e.user) || this.opts.isLinked(e.user)) {
          return;
        }
        this.opts.onLearn?.(e, m.user);
        this.opts.dial(e);
        return;
      }
    }
  }

  /** Whom we are linked to, as each described itself, for `to` (never `to` itself). */
  #known(to: string): unknown[] {
    return [...this.#linked.values()]
      .filter((l) => l.self && l.member.user !== to)
      .slice(0, MAX_KNOWN)
      .map((l) => entryToWire(l.self!));
  }

  #tellSoon(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      for (const [user, l] of this.#linked) {
        if (l.out && !l.out.failure) writeLine(l.out, { t: "known", list: this.#known(user) });
      }
    }, TELL_AFTER_MS);
    Deno.unrefTimer(this.#timer);
  }
}
