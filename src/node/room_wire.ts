/**
 * The frames of the one chat room (src/node/room.ts), one JSON object per line on a "room" stream:
 *  - say: a chat line of `o` (origin user), the `s`-th of its run `r`;
 *  - here: `o`'s presence, version `v` of its run `r` started at `since`: whom it is linked to
 *    (`l`), the sequence number of its next line (`n`), or that it leaves (`bye`).
 * Every frame carries `h`, the hops it may still travel. Decoding checks every field: a frame
 * that fails is dropped whole (one failure policy), never half-read.
 */
import { isValidUserId } from "../protocol/messages.ts";

export const ROOM_PROTOCOL = "room";
/** A frame travels at most this many links from its origin: a group is small, a loop is cut. */
export const MAX_HOPS = 16;
/** A longer chat line is cut by its sender and refused from others (a chat line, not a file). */
export const MAX_TEXT_CHARS = 16 * 1024;
/** A presence lists this many links at most. */
export const MAX_LISTED_LINKS = 64;

interface FrameBase {
  /** The origin: whose line or presence this is. */
  o: string;
  /** The origin's run (one per node start): sequence numbers and versions count within it. */
  r: string;
  /** Hops left. */
  h: number;
  /** When the origin made it (ms since the epoch, its clock). */
  at: number;
}

export interface SayFrame extends FrameBase {
  k: "say";
  s: number;
  t: string;
}

export interface HereFrame extends FrameBase {
  k: "here";
  since: number;
  v: number;
  l: string[];
  /** The sequence number the origin's next line will carry. */
  n: number;
  bye: boolean;
}

export type RoomFrame = SayFrame | HereFrame;

const RUN = /^[0-9a-f]{16}$/;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

export function encodeFrame(f: RoomFrame): Record<string, unknown> {
  const base = { k: f.k, o: f.o, r: f.r, h: f.h, at: f.at };
  return f.k === "say"
    ? { ...base, s: f.s, t: f.t }
    : { ...base, since: f.since, v: f.v, l: f.l, n: f.n, ...(f.bye ? { bye: 1 } : {}) };
}

export function decodeFrame(w: unknown): RoomFrame | undefined {
  if (typeof w !== "object" || w === null || Array.isArray(w)) return undefined;
  const o = w as Record<string, unknown>;
  if (!isValidUserId(o.o) || typeof o.r !== "string" || !RUN.test(o.r)) return undefined;
  if (!Number.isInteger(o.h) || (o.h as number) < 0 || (o.h as number) > MAX_HOPS || !isTime(o.at)) {
    return undefined;
  }
  const base = { o: o.o, r: o.r, h: o.h as number, at: o.at };
  if (o.k === "say") {
    if (!isCount(o.s) || typeof o.t !== "string" || o.t.length > MAX_TEXT_CHARS) return undefined;
    return { k: "say", ...base, s: o.s, t: o.t };
  }
  if (o.k === "here") {
    if (
      !isTime(o.since) || !isCount(o.v) || !isCount(o.n) || !Array.isArray(o.l) ||
      o.l.length > MAX_LISTED_LINKS
    ) {
      return undefined;
    }
    if (!o.l.every(isValidUserId)) return undefined;
    const l = [...new Set(o.l as string[])];
    return { k: "here", ...base, since: o.since, v: o.v, l, n: o.n, bye: o.bye === 1 };
  }
  return undefined;
}
