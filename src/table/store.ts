/**
 * The host's durable state in SQLite (node:sqlite): the peer table (Fig. 7), the nonces seen (replay
 * detection, and which requests were already answered), and the hosts this one syncs with.
 *
 * Every statement a request runs is an index lookup or an index range bounded by LIMIT, and the row
 * count is kept by triggers, so what a request costs does not grow with the table (issue 12).
 *
 * Durability: WAL with synchronous=NORMAL. A commit then reaches the operating system at once (a
 * killed host loses nothing it committed) but is fsynced only at checkpoints, so a power cut may
 * roll back the last commits. That alone would break "a request is deleted from the mailbox only
 * after its row is durable", so the mailbox deletion, the one step that cannot be taken back, is
 * preceded by sync(), which fsyncs the WAL: a batch of commits then costs one fsync instead of one
 * each (synchronous=FULL), and what a power cut can roll back is only work whose mail is still in
 * the box, so it is redone — a duplicate reply at worst, never a lost row.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { decodeCandidates, decodeMapping, encodeCandidates } from "../protocol/candidate.ts";
import { expiredAtOrBefore, type TableEntry } from "./policy.ts";

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

/** 1: peers + nonces. 2: peers.origin, hosts. 3: recency index, row count, nonces.answered, peers.candidates (reachability as JSON). */
const SCHEMA_VERSION = 3;

export class TableStoreError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "TableStoreError";
  }
}

const COLUMNS = "user, host, port, email, link_key, flagged, stored, origin, candidates";

/** The statements a store runs, prepared once. */
interface Statements {
  get: StatementSync;
  put: StatementSync;
  remove: StatementSync;
  flag: StatementSync;
  evictExpired: StatementSync;
  evictOldest: StatementSync;
  recent: StatementSync;
  count: StatementSync;
  nonce: StatementSync;
  recordNonce: StatementSync;
  answerNonce: StatementSync;
  forgetNonces: StatementSync;
  addHost: StatementSync;
  hosts: StatementSync;
  markSynced: StatementSync;
}

export class TableStore implements Disposable {
  #db: DatabaseSync;
  #q: Statements;
  #depth = 0;
  /** Rows materialized by reads since the store opened (tests check it does not grow with the table). */
  rowsRead = 0;

  constructor(readonly path: string) {
    try {
      this.#db = new DatabaseSync(path);
      this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
      this.#migrate();
      this.#q = this.#prepare();
    } catch (err) {
      if (err instanceof TableStoreError) throw err;
      throw new TableStoreError(`Cannot open the peer table ${path}: ${(err as Error).message}.`, {
        cause: err,
      });
    }
  }

  #migrate(): void {
    const db = this.#db;
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS peers (
          user TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL, email TEXT NOT NULL,
          link_key BLOB NOT NULL, flagged INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, message TEXT NOT NULL, seen INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS nonces_seen ON nonces(seen);
        CREATE TABLE IF NOT EXISTS hosts (address TEXT PRIMARY KEY, learned INTEGER NOT NULL, synced INTEGER NOT NULL DEFAULT 0);
      `);
      const row = db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as
        | { value: string }
        | undefined;
      const version = row ? Number(row.value) : 0;
      if (version > SCHEMA_VERSION) {
        throw new TableStoreError(
          `The table ${this.path} was written by a newer mailmeet (schema ${version}); update mailmeet or use another --db.`,
        );
      }
      const cols = (table: string) =>
        db.prepare(`PRAGMA table_info(${table})`).all().map((c) => String(c.name));
      const peerCols = cols("peers");
      if (!peerCols.includes("origin")) {
        db.exec("ALTER TABLE peers ADD COLUMN origin TEXT NOT NULL DEFAULT ''");
      }
      if (!peerCols.includes("candidates")) {
        db.exec("ALTER TABLE peers ADD COLUMN candidates TEXT NOT NULL DEFAULT '[]'");
      }
      if (!cols("nonces").includes("answered")) {
        db.exec("ALTER TABLE nonces ADD COLUMN answered INTEGER NOT NULL DEFAULT 0");
      }
      db.exec(`
        DROP INDEX IF EXISTS peers_stored;
        -- byRecency (policy.ts): replies read it forwards, eviction backwards.
        CREATE INDEX IF NOT EXISTS peers_recency ON peers(stored DESC, user ASC);
        CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
        INSERT OR IGNORE INTO counts (name, n) SELECT 'peers', COUNT(*) FROM peers;
        CREATE TRIGGER IF NOT EXISTS peers_counted_in AFTER INSERT ON peers
          BEGIN UPDATE counts SET n = n + 1 WHERE name = 'peers'; END;
        CREATE TRIGGER IF NOT EXISTS peers_counted_out AFTER DELETE ON peers
          BEGIN UPDATE counts SET n = n - 1 WHERE name = 'peers'; END;
      `);
      if (version < SCHEMA_VERSION) {
        db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)").run(
          String(SCHEMA_VERSION),
        );
      }
      db.exec("COMMIT");
    } catch (err) {
      db.exec("ROLLBACK");
      throw err;
    }
  }

  #prepare(): Statements {
    const p = (sql: string) => this.#db.prepare(sql);
    return {
      get: p(`SELECT ${COLUMNS} FROM peers WHERE user = ?`),
      put: p(
        `INSERT INTO peers (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(user) DO UPDATE SET host = excluded.host, port = excluded.port, email = excluded.email,
           link_key = excluded.link_key, flagged = excluded.flagged, stored = excluded.stored,
           origin = excluded.origin, candidates = excluded.candidates`,
      ),
      remove: p("DELETE FROM peers WHERE user = ?"),
      flag: p("UPDATE peers SET flagged = 1 WHERE user = ?"),
      evictExpired: p("DELETE FROM peers WHERE stored <= ? AND user != ?"),
      evictOldest: p(
        "DELETE FROM peers WHERE user IN (SELECT user FROM peers WHERE user != ? ORDER BY stored ASC, user DESC LIMIT ?)",
      ),
      recent: p(
        `SELECT ${COLUMNS} FROM peers WHERE stored > ? AND user != ? ORDER BY stored DESC, user ASC LIMIT ?`,
      ),
      count: p("SELECT n FROM counts WHERE name = 'peers'"),
      nonce: p("SELECT message, answered FROM nonces WHERE nonce = ?"),
      recordNonce: p("INSERT OR IGNORE INTO nonces (nonce, message, seen) VALUES (?, ?, ?)"),
      answerNonce: p("UPDATE nonces SET answered = ? WHERE nonce = ?"),
      forgetNonces: p("DELETE FROM nonces WHERE seen < ?"),
      addHost: p("INSERT OR IGNORE INTO hosts (address, learned) VALUES (?, ?)"),
      hosts: p("SELECT address, synced FROM hosts ORDER BY address"),
      markSynced: p("UPDATE hosts SET synced = ? WHERE address = ?"),
    };
  }

  /** Runs `fn` in one transaction (BEGIN IMMEDIATE: one writer at a time across processes); nests. */
  transaction<T>(fn: () => T): T {
    if (this.#depth > 0) {
      this.#depth++;
      try {
        return fn();
      } finally {
        this.#depth--;
      }
    }
    this.#db.exec("BEGIN IMMEDIATE");
    this.#depth = 1;
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    } finally {
      this.#depth = 0;
    }
  }

  /** Makes every commit so far survive a power cut: fsyncs the WAL (see the comment at the top). */
  sync(): void {
    let wal: Deno.FsFile;
    try {
      wal = Deno.openSync(`${this.path}-wal`, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return; // checkpointed and removed: all in the synced database
      throw err;
    }
    try {
      wal.syncDataSync();
    } finally {
      wal.close();
    }
  }

  /** The row of `user`, if any. */
  get(user: string): TableEntry | undefined {
    const r = this.#q.get.get(user);
    return r ? this.#entry(r) : undefined;
  }

  /** Live rows (stored after `after`), newest first, without `except`, at most `limit`. */
  recent(after: number, except: string | null, limit: number): TableEntry[] {
    return this.#q.recent.all(after, except ?? "\u0000", limit).map((r) => this.#entry(r));
  }

  /** Rows held (expired ones too, until a write evicts them): a kept count, never a scan. */
  count(): number {
    return Number((this.#q.count.get() as { n: number } | undefined)?.n ?? 0);
  }

  /** Writes a row, replacing the user's old one; a re-registered peer starts unflagged. */
  put(e: TableEntry): void {
    this.#q.put.run(
      e.user,
      e.host,
      e.port,
      e.email,
      e.linkKey,
      e.flagged ? 1 : 0,
      e.stored,
      e.origin,
      writeReach(e),
    );
  }

  remove(users: readonly string[]): void {
    for (const u of users) this.#q.remove.run(u);
  }

  /** Removes rows expired at `now` (one index range), except `keep`'s. */
  evictExpired(now: number, ttlMs: number, keep: string): number {
    return Number(this.#q.evictExpired.run(expiredAtOrBefore(now, ttlMs), keep).changes);
  }

  /** Removes the `n` oldest rows (the back of byRecency), except `keep`'s. */
  evictOldest(n: number, keep: string): number {
    if (n <= 0) return 0;
    return Number(this.#q.evictOldest.run(keep, n).changes);
  }

  /** Flags a user's row; false when no such row. */
  flag(user: string): boolean {
    return Number(this.#q.flag.run(user).changes) > 0;
  }

  /** The mail a nonce was first seen in and whether it was answered; undefined if never seen. */
  nonce(nonce: string): { message: string; answered: boolean } | undefined {
    const row = this.#q.nonce.get(nonce) as { message: string; answered: number } | undefined;
    if (row) this.rowsRead++;
    return row ? { message: String(row.message), answered: Number(row.answered) > 0 } : undefined;
  }

  recordNonce(nonce: string, message: string, seen: number): void {
    this.#q.recordNonce.run(nonce, message, seen);
  }

  /** Notes that the mail carrying `nonce` was answered (at `now`): a restart deletes it unanswered. */
  answerNonce(nonce: string, now: number): void {
    this.#q.answerNonce.run(now, nonce);
  }

  /** Nonces older than the freshness window can go: such requests are refused as old anyway. */
  forgetNonces(before: number): void {
    this.#q.forgetNonces.run(before);
  }

  /** Other hosts this one exchanges entries with; true when the address is new. */
  addHost(address: string, now: number): boolean {
    return Number(this.#q.addHost.run(address, now).changes) > 0;
  }

  hosts(): { address: string; synced: number }[] {
    return this.#q.hosts.all().map((r) => ({ address: String(r.address), synced: Number(r.synced) }));
  }

  markSynced(address: string, now: number): void {
    this.#q.markSynced.run(now, address);
  }

  /** EXPLAIN QUERY PLAN of every statement a request runs (tests: indexes only, no table scans). */
  plans(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [name, stmt] of Object.entries(this.#q)) {
      const sql = (stmt as StatementSync).sourceSQL;
      const args = (sql.match(/\?/g) ?? []).map(() => 0);
      out[name] = this.#db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args).map((r) => String(r.detail));
    }
    return out;
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #entry(r: Record<string, unknown>): TableEntry {
    this.rowsRead++;
    const e: TableEntry = {
      user: String(r.user),
      host: String(r.host),
      port: Number(r.port),
      email: String(r.email),
      linkKey: new Uint8Array(r.link_key as Uint8Array),
      flagged: Number(r.flagged) === 1,
      stored: Number(r.stored),
      origin: String(r.origin),
    };
    return { ...e, ...readReach(String(r.candidates ?? "[]")) };
  }
}
