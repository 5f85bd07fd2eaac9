/**
 * The host's durable state in SQLite (node:sqlite): the peer table (Fig. 7) and the nonces seen,
 * for replay detection. Committed with synchronous=FULL: a row the host has answered from must
 * survive a crash (the request mail is deleted only after this commit).
 */
import { DatabaseSync } from "node:sqlite";
import { decodeCandidates, decodeMapping, encodeCandidates } from "../protocol/candidate.ts";
import type { TableEntry } from "./policy.ts";

type Reach = Pick<TableEntry, "candidates" | "mapping" | "relay" | "role">;

/** A row's reachability as one JSON column: {c, m, y, z} like the wire format, or [] for none. */
function writeReach(e: TableEntry): string {
  if (!e.candidates) return "[]";
  return JSON.stringify({
    c: encodeCandidates(e.candidates),
    m: e.mapping ?? "unknown",
    y: e.relay ? 1 : 0,
    z: e.role ?? "peer",
  });
}

function readReach(text: string): Reach {
  try {
    const v = JSON.parse(text);
    if (Array.isArray(v) || typeof v !== "object" || v === null) return {};
    return {
      candidates: decodeCandidates(v.c),
      mapping: decodeMapping(v.m),
      relay: v.y === 1,
      role: v.z === "relay" ? "relay" : "peer",
    };
  } catch {
    return {}; // a damaged column costs the candidates, never the row
  }
}

/** 1: peers + nonces. 2: peers.origin, hosts. 3: peers.candidates (reachability as JSON). */
const SCHEMA_VERSION = 3;

export class TableStoreError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "TableStoreError";
  }
}

export class TableStore implements Disposable {
  #db: DatabaseSync;

  constructor(readonly path: string) {
    try {
      this.#db = new DatabaseSync(path);
      this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
      this.#db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS peers (
          user TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL, email TEXT NOT NULL,
          link_key BLOB NOT NULL, flagged INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS peers_stored ON peers(stored);
        CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, message TEXT NOT NULL, seen INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS nonces_seen ON nonces(seen);
        CREATE TABLE IF NOT EXISTS hosts (address TEXT PRIMARY KEY, learned INTEGER NOT NULL, synced INTEGER NOT NULL DEFAULT 0);
      `);
      const cols = this.#db.prepare("PRAGMA table_info(peers)").all().map((c) => String(c.name));
      if (!cols.includes("origin")) {
        this.#db.exec("ALTER TABLE peers ADD COLUMN origin TEXT NOT NULL DEFAULT ''");
      }
      if (!cols.includes("candidates")) {
        this.#db.exec("ALTER TABLE peers ADD COLUMN candidates TEXT NOT NULL DEFAULT '[]'");
      }
      const row = this.#db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as
        | { value: string }
        | undefined;
      if (!row || Number(row.value) < SCHEMA_VERSION) {
        this.#db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)").run(
          String(SCHEMA_VERSION),
        );
      } else if (Number(row.value) > SCHEMA_VERSION) {
        throw new TableStoreError(
          `The table ${path} was written by a newer mailmeet (schema ${row.value}); update mailmeet or use another --db.`,
        );
      }
    } catch (err) {
      if (err instanceof TableStoreError) throw err;
      throw new TableStoreError(`Cannot open the peer table ${path}: ${(err as Error).message}.`, {
        cause: err,
      });
    }
  }

  /** Runs `fn` in one transaction (BEGIN IMMEDIATE: one writer at a time across processes). */
  transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  rows(): TableEntry[] {
    const rows = this.#db.prepare(
      "SELECT user, host, port, email, link_key, flagged, stored, origin, candidates FROM peers",
    )
      .all();
    return rows.map((r) => ({
      user: String(r.user),
      host: String(r.host),
      port: Number(r.port),
      email: String(r.email),
      linkKey: new Uint8Array(r.link_key as Uint8Array),
      flagged: Number(r.flagged) === 1,
      stored: Number(r.stored),
      origin: String(r.origin),
      ...readReach(String(r.candidates)),
    }));
  }

  /** Writes a row, replacing the user's old one; a re-registered peer starts unflagged. */
  put(e: TableEntry): void {
    this.#db.prepare(
      `INSERT INTO peers (user, host, port, email, link_key, flagged, stored, origin, candidates) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(user) DO UPDATE SET host = excluded.host, port = excluded.port, email = excluded.email,
         link_key = excluded.link_key, flagged = excluded.flagged, stored = excluded.stored, origin = excluded.origin,
         candidates = excluded.candidates`,
    ).run(e.user, e.host, e.port, e.email, e.linkKey, e.flagged ? 1 : 0, e.stored, e.origin, writeReach(e));
  }

  remove(users: readonly string[]): void {
    const del = this.#db.prepare("DELETE FROM peers WHERE user = ?");
    for (const u of users) del.run(u);
  }

  /** Flags a user's row; false when no such row. */
  flag(user: string): boolean {
    return Number(this.#db.prepare("UPDATE peers SET flagged = 1 WHERE user = ?").run(user).changes) > 0;
  }

  /** The mail a nonce was first seen in, or undefined if never seen. */
  nonceMessage(nonce: string): string | undefined {
    const row = this.#db.prepare("SELECT message FROM nonces WHERE nonce = ?").get(nonce) as
      | { message: string }
      | undefined;
    return row?.message;
  }

  recordNonce(nonce: string, message: string, seen: number): void {
    this.#db.prepare("INSERT OR IGNORE INTO nonces (nonce, message, seen) VALUES (?, ?, ?)").run(
      nonce,
      message,
      seen,
    );
  }

  /** Nonces older than the freshness window can go: such requests are refused as old anyway. */
  forgetNonces(before: number): void {
    this.#db.prepare("DELETE FROM nonces WHERE seen < ?").run(before);
  }

  /** Other hosts this one exchanges entries with; true when the address is new. */
  addHost(address: string, now: number): boolean {
    return Number(
      this.#db.prepare("INSERT OR IGNORE INTO hosts (address, learned) VALUES (?, ?)").run(address, now)
        .changes,
    ) > 0;
  }

  hosts(): { address: string; synced: number }[] {
    return this.#db.prepare("SELECT address, synced FROM hosts ORDER BY address").all().map((r) => ({
      address: String(r.address),
      synced: Number(r.synced),
    }));
  }

  markSynced(address: string, now: number): void {
    this.#db.prepare("UPDATE hosts SET synced = ? WHERE address = ?").run(now, address);
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
