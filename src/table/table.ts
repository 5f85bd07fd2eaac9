/**
 * The host's peer table: the policy (policy.ts) applied to durable storage (store.ts), one row at a
 * time — admit()'s rules through accepts()/overflow() over indexed lookups, pickForReply() as an
 * index range — so no request reads the whole table.
 */
import { accepts, expiredAtOrBefore, overflow, type TableEntry, type TablePolicy } from "./policy.ts";
import { TableStore } from "./store.ts";

export type NonceVerdict =
  /** Never seen: recorded now. */
  | "new"
  /** Seen in this same mail before, not answered yet (a crash before its reply): answer it. */
  | "retry"
  /** Seen in this same mail and answered before a restart: delete it without answering again. */
  | "answered"
  /** Seen in another mail: somebody re-sent a captured request. */
  | "replay";

export class PeerTable implements Disposable {
  readonly store: TableStore;

  constructor(path: string, readonly policy: TablePolicy) {
    this.store = new TableStore(path);
  }

  /** Stores a peer (one row per user id, capacity kept); false if a newer request from it is already held. */
  register(entry: TableEntry, now: number): boolean {
    return this.store.transaction(() => {
      const same = this.store.get(entry.user);
      if (!accepts(same, entry, this.policy, now)) return false;
      this.#makeRoom(entry.user, same !== undefined, now);
      this.store.put(entry);
      return true;
    });
  }

  /**
   * Stores an entry learned from another host (sync, chaining): kept only when newer than what we
   * hold, or when it brings a flag. A flag alone never replaces a row we registered ourselves.
   */
  learn(entry: TableEntry, now: number): boolean {
    return this.store.transaction(() => {
      const same = this.store.get(entry.user);
      if (!accepts(same, entry, this.policy, now)) return false;
      if (same && same.stored === entry.stored) return this.store.flag(entry.user);
      this.#makeRoom(entry.user, same !== undefined, now);
      this.store.put(entry);
      return true;
    });
  }

  /** admit()'s evictions: expired rows, then the oldest beyond capacity (the newcomer keeps its own row). */
  #makeRoom(user: string, hasRow: boolean, now: number): void {
    this.store.evictExpired(now, this.policy.ttlMs, user);
    const others = this.store.count() - (hasRow ? 1 : 0);
    this.store.evictOldest(overflow(others, this.policy), user);
  }

  /** pickForReply(): the most recent live others, never the requester (【0043】). */
  replyFor(requester: string, now: number): TableEntry[] {
    return this.store.recent(expiredAtOrBefore(now, this.policy.ttlMs), requester, this.policy.replyLimit);
  }

  /** The row of `user`, if held. */
  get(user: string): TableEntry | undefined {
    return this.store.get(user);
  }

  /** Notes another host of the group (【0059】); true when it was not known yet. */
  addHost(address: string, now: number): boolean {
    return this.store.addHost(address, now);
  }

  /** Notes a sync with `address` at `now`. */
  markSynced(address: string, now: number): void {
    this.store.markSynced(address, now);
  }

  /** The other hosts known, with when each last synced. */
  hosts(): { address: string; synced: number }[] {
    return this.store.hosts();
  }

  /** Forgets a peer that said it leaves, if the row is of that run (its link key); false otherwise. */
  forget(user: string, linkKey: Uint8Array): boolean {
    return this.store.transaction(() => {
      const row = this.store.get(user);
      if (!row || row.linkKey.length !== linkKey.length || !row.linkKey.every((b, i) => b === linkKey[i])) {
        return false;
      }
      this.store.remove([user]);
      return true;
    });
  }

  /** Flags the peer named by user id (【0047】); false when the table has no such peer. */
  flag(user: string): boolean {
    return this.store.transaction(() => this.store.flag(user));
  }

  /**
   * Replay check keyed by the request's nonce and the mailbox id of the mail it came in: the same
   * mail seen again after a crash is a retry (or, if it was answered, done), the same nonce in
   * another mail is a replay.
   */
  checkNonce(nonce: string, mailId: string, time: number, forgetBefore: number): NonceVerdict {
    return this.store.transaction(() => {
      const first = this.store.nonce(nonce);
      if (first === undefined) {
        this.store.forgetNonces(forgetBefore);
        this.store.recordNonce(nonce, mailId, time);
        return "new";
      }
      if (first.message !== mailId) return "replay";
      return first.answered ? "answered" : "retry";
    });
  }

  /**
   * Runs `work` (the table change a message causes) and notes, in the same transaction, that the
   * message with `nonce` is done, so a host restarted before its mail was deleted does not answer
   * it again (issue 11). Called once its reply was accepted.
   */
  settle<T>(nonce: string, now: number, work: () => T): T {
    return this.store.transaction(() => {
      const out = work();
      this.store.answerNonce(nonce, now);
      return out;
    });
  }

  /** Makes everything committed durable against a power cut (before mail is deleted). */
  sync(): void {
    this.store.sync();
  }

  /** Live rows, newest first, at most `limit` (for `mailmeet table` and syncs). */
  entries(now: number, limit = Number.MAX_SAFE_INTEGER): TableEntry[] {
    return this.store.recent(expiredAtOrBefore(now, this.policy.ttlMs), null, limit);
  }

  /** Rows held, from a kept count (status files read it often). */
  size(): number {
    return this.store.count();
  }

  close(): void {
    this.store.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
