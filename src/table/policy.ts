import type { Candidate, MappingBehaviour } from "../protocol/candidate.ts";

/**
 * The rules of the host's peer table and of the peer's choice of whom to dial. Pure: every
 * function takes `now`, so tests need no clock and no timers.
 */

export interface TableEntry {
  user: string;
  host: string;
  port: number;
  /** Stays inside the host (【0045】): never put in a reply. */
  email: string;
  linkKey: Uint8Array;
  /** Someone reported this peer unreachable (【0047】). */
  flagged: boolean;
  /** The request's own time (ms): the "date" column of Fig. 7. Kept as is when entries travel between hosts. */
  stored: number;
  /** "" when the peer registered here itself; else the host it was learned from (email is then ""). */
  origin: string;
  /** How to reach it beyond host/port (absent in rows written by an older mailmeet). */
  candidates?: Candidate[];
  mapping?: MappingBehaviour;
  relay?: boolean;
  role?: "peer" | "relay";
}

export interface TablePolicy {
  /** Rows kept at most; the oldest is overwritten (claim 10). */
  capacity: number;
  /** Rows older than this are gone (【0042】). */
  ttlMs: number;
  /** Peers in one reply at most (claim 11). */
  replyLimit: number;
}

export const DEFAULT_POLICY: TablePolicy = { capacity: 1000, ttlMs: 12 * 3600_000, replyLimit: 16 };

export function isExpired(e: Pick<TableEntry, "stored">, now: number, ttlMs: number): boolean {
  return e.stored <= expiredAtOrBefore(now, ttlMs);
}

/** Rows stored at or before this time are expired: one range over the `stored` order. */
export function expiredAtOrBefore(now: number, ttlMs: number): number {
  return now - ttlMs;
}

/**
 * Newest first; equal times in a stable order by user id. Replies take from the front of this
 * order, eviction from the back: storage keeps an index in exactly this order.
 */
export function byRecency(
  a: Pick<TableEntry, "stored" | "user">,
  b: Pick<TableEntry, "stored" | "user">,
): number {
  return b.stored - a.stored || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0);
}

export interface Admission {
  /** False when the table already holds a newer request from the same user (an old one replayed late). */
  accept: boolean;
  /** Users whose rows go: expired ones, and the oldest beyond capacity. */
  evict: string[];
}

/**
 * What storing `incoming` does to a table holding `rows`: one row per user id, capacity kept.
 * A peer's own request wins over anything older; an entry learned from another host must be
 * strictly newer (or bring a flag the row lacks), so entries never look fresher than they are and
 * two hosts syncing each other settle instead of echoing.
 */
export function admit(
  rows: readonly TableEntry[],
  incoming: TableEntry,
  policy: TablePolicy,
  now: number,
): Admission {
  const same = rows.find((r) => r.user === incoming.user);
  if (!accepts(same, incoming, policy, now)) return { accept: false, evict: [] };
  const evict = rows.filter((r) => r.user !== incoming.user && isExpired(r, now, policy.ttlMs)).map((r) =>
    r.user
  );
  const gone = new Set(evict);
  const kept = rows.filter((r) => r.user !== incoming.user && !gone.has(r.user)).sort(byRecency);
  for (const r of kept.slice(kept.length - overflow(kept.length, policy))) evict.push(r.user);
  return { accept: true, evict };
}

/**
 * admit() one row at a time, for storage that cannot afford to read the table: whether `incoming`
 * replaces `same` (the row of the same user, if any).
 */
export function accepts(
  same: TableEntry | undefined,
  incoming: TableEntry,
  policy: TablePolicy,
  now: number,
): boolean {
  if (same && same.stored > incoming.stored) return false;
  if (incoming.origin !== "") {
    if (isExpired(incoming, now, policy.ttlMs)) return false;
    if (same && same.stored === incoming.stored && (same.flagged || !incoming.flagged)) return false;
  }
  return true;
}

/**
 * admit() one row at a time: with `others` live rows of other users left after expiry, how many of
 * the oldest (the back of byRecency) must go so that the newcomer fits within capacity.
 */
export function overflow(others: number, policy: TablePolicy): number {
  return Math.max(0, others - Math.max(0, policy.capacity - 1));
}

/** The reply's peers: the most recent live others, never the requester itself (【0043】). */
export function pickForReply(
  rows: readonly TableEntry[],
  requester: string,
  policy: TablePolicy,
  now: number,
): TableEntry[] {
  return rows
    .filter((r) => r.user !== requester && !isExpired(r, now, policy.ttlMs))
    .sort(byRecency)
    .slice(0, policy.replyLimit);
}

export interface RankOptions {
  friends?: ReadonlySet<string>;
  blocked?: ReadonlySet<string>;
}

/**
 * The order a peer dials candidates in (【0030】【0031】): blocked never, friends first, then
 * the unflagged before the flagged, most recent first within each group.
 */
export function rankCandidates<T extends { user: string; seen: number; flagged: boolean }>(
  peers: readonly T[],
  opts: RankOptions = {},
): T[] {
  const friends = opts.friends ?? new Set<string>();
  const blocked = opts.blocked ?? new Set<string>();
  const group = (p: T) => (friends.has(p.user) ? 0 : 2) + (p.flagged ? 1 : 0);
  return peers
    .filter((p) => !blocked.has(p.user))
    .sort((a, b) =>
      group(a) - group(b) || b.seen - a.seen || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0)
    );
}

/** Freshness of a request (【0041】): not older than maxAge, not further ahead than the clock skew we allow. */
export function freshness(
  time: number,
  now: number,
  maxAgeMs: number,
  skewMs: number,
): "ok" | "old" | "future" {
  if (time < now - maxAgeMs) return "old";
  if (time > now + skewMs) return "future";
  return "ok";
}
