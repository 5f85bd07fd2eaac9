/**
 * What the host role (host.ts), its screen (screen.ts) and the representative (forwarder.ts) need
 * from the table's storage, in the table's own words. src/table/table.ts implements it over
 * SQLite; tests may implement it in memory. The role never sees rows, SQL or transactions.
 */
import type { TableEntry } from "../table/policy.ts";
import type { NonceVerdict } from "../table/table.ts";

/** The replay check every host mail passes (screen.ts). */
export interface NonceLedger {
  /** The nonce of the mail `mailId` is new, a retry of that mail, answered already, or a replay. */
  checkNonce(nonce: string, mailId: string, time: number, forgetBefore: number): NonceVerdict;
  /** Runs `work` and notes, atomically with it, that the message with `nonce` is done. */
  settle<T>(nonce: string, now: number, work: () => T): T;
}

export interface HostStorage extends NonceLedger {
  readonly policy: { readonly replyLimit: number };
  /** Stores a peer's request; false if a newer one from it is held already. */
  register(entry: TableEntry, now: number): boolean;
  /** Stores an entry another host passed on; false if it brings nothing new. */
  learn(entry: TableEntry, now: number): boolean;
  /** The peers a reply to `requester` lists, most recent first. */
  replyFor(requester: string, now: number): TableEntry[];
  /** The row of `user`, if held. */
  get(user: string): TableEntry | undefined;
  /** Forgets `user` if its row is of the run with `linkKey`. */
  forget(user: string, linkKey: Uint8Array): boolean;
  /** Flags `user` (【0047】); false when there is no such row. */
  flag(user: string): boolean;
  /** Live rows, newest first, at most `limit`. */
  entries(now: number, limit?: number): TableEntry[];
  /** Notes another host of the group; true when it was not known yet. */
  addHost(address: string, now: number): boolean;
  /** Notes that `address` was sent (or sent us) a sync at `now`. */
  markSynced(address: string, now: number): void;
  /** The other hosts known, with when each last synced. */
  hosts(): { address: string; synced: number }[];
}
