/** The host's peer table: the policy (policy.ts) applied to durable storage (store.ts). */
import { admit, isExpired, pickForReply, type TableEntry, type TablePolicy } from "./policy.ts";
import { TableStore } from "./store.ts";

export type NonceVerdict =
  /** Never seen: recorded now. */
  | "new"
  /** Seen in this same mail before (a restart after a crash): answer again, it is harmless. */
  | "retry"
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
      const verdict = admit(this.store.rows(), entry, this.policy, now);
      if (!verdict.accept) return false;
      this.store.remove(verdict.evict);
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
      const rows = this.store.rows();
      const verdict = admit(rows, entry, this.policy, now);
      if (!verdict.accept) return false;
      const same = rows.find((r) => r.user === entry.user);
      if (same && same.stored === entry.stored) return this.store.flag(entry.user);
      this.store.remove(verdict.evict);
      this.store.put(entry);
      return true;
    });
  }

  replyFor(requester: string, now: number): TableEntry[] {
    return pickForReply(this.store.rows(), requester, this.policy, now);
  }

  /** Forgets a peer that said it leaves, if the row is of that run (its link key); false otherwise. */
  forget(user: string, linkKey: Uint8Array): boolean {
    return this.store.transaction(() => {
      const row = this.store.rows().find((r) => r.user === user);
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
   * mail seen again after a crash is a retry, the same nonce in another mail is a replay.
   */
  checkNonce(nonce: string, mailId: string, time: number, forgetBefore: number): NonceVerdict {
    return this.store.transaction(() => {
      const first = this.store.nonceMessage(nonce);
      if (first === undefined) {
        this.store.forgetNonces(forgetBefore);
        this.store.recordNonce(nonce, mailId, time);
        return "new";
      }
      return first === mailId ? "retry" : "replay";
    });
  }

  /** Live rows, newest first (for `mailmeet table`). */
  entries(now: number): TableEntry[] {
    return this.store.rows().filter((r) => !isExpired(r, now, this.policy.ttlMs)).sort((a, b) =>
      b.stored - a.stored
    );
  }

  close(): void {
    this.store.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
