/**
 * The Mailbox interface over one IMAP connection at a time, with the mailbox SELECTed:
 * - ids are "<UIDVALIDITY>:<UID>", stable across reconnects while UIDVALIDITY holds (RFC 3501 §2.3.1.1);
 * - one operation at a time (a FIFO lock), and an IDLE in progress is ended (DONE) as soon as an
 *   operation wants the connection;
 * - a dropped connection is replaced with exponential backoff and jitter; the operation that saw
 *   the drop is retried once on the new connection, and watch() yields so the caller re-lists;
 * - new mail is noticed through untagged EXISTS growing, whether it arrives during IDLE, NOOP or
 *   in the middle of another command, so mail that lands between a list() and the next IDLE is
 *   never slept through.
 */
import { type Account, durationParam, where } from "../account.ts";
import { CONNECT_TIMEOUT_MS } from "../connection.ts";
import { isRetriableError, MailError, tlsOfferGone } from "../errors.ts";
import { type Mailbox, type MailboxOptions, type MessageInfo, subjectHasMarker } from "../mailbox.ts";
import { parseHeader } from "../parse.ts";
import { ImapClient } from "./client.ts";
import {
  expunge,
  fetchBodies,
  fetchBody,
  fetchHeaders,
  fetchSize,
  listMailboxes,
  moveTo,
  searchHeader,
  searchSubject,
  select,
  storeDeleted,
} from "./commands.ts";
import type { ImapResponse } from "./parser.ts";
import { findJunkFolder } from "./junk.ts";
import { backoffDelay, sleep } from "../backoff.ts";

export const DEFAULT_POLL_INTERVAL_MS = 2_000;
export const GREETING_TIMEOUT_MS = 15_000;
export const COMMAND_TIMEOUT_MS = 30_000;
/**
 * RFC 2177 §3 lets servers log out a client after 30 idle minutes, but real servers and networks
 * cut far sooner: 10–13 minutes is common, some after 6, and home NAT gateways forget a quiet TCP
 * connection after about 15 (issue 15). Renewing every 5 minutes (as Delta Chat does) keeps the
 * connection alive, and the DONE of each renewal is the liveness check: a connection that stopped
 * carrying anything gives no answer to it within COMMAND_TIMEOUT_MS, and is replaced.
 */
export const IDLE_REFRESH_MS = 5 * 60_000;
/** How much longer than IDLE_REFRESH_MS an IDLE may stay silent before the connection counts as dead. */
export const IDLE_MARGIN_MS = 60_000;
/** LOGOUT on close: nothing is lost by giving up on it sooner. */
export const LOGOUT_TIMEOUT_MS = 5_000;
export const RECONNECT_ATTEMPTS = 8;
export const RECONNECT_BASE_DELAY_MS = 250;
export const RECONNECT_MAX_DELAY_MS = 10_000;

export interface ImapTuning {
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  commandTimeoutMs: number;
  idleRefreshMs: number;
  idleMarginMs: number;
  logoutTimeoutMs: number;
  /** Connection attempts per reconnect, the first one immediate. */
  reconnectAttempts: number;
  reconnectBaseDelayMs: number;
  reconnectMaxDelayMs: number;
  /** [0, 1) source for the backoff jitter. */
  random: () => number;
}

export const DEFAULT_TUNING: ImapTuning = {
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  greetingTimeoutMs: GREETING_TIMEOUT_MS,
  commandTimeoutMs: COMMAND_TIMEOUT_MS,
  idleRefreshMs: IDLE_REFRESH_MS,
  idleMarginMs: IDLE_MARGIN_MS,
  logoutTimeoutMs: LOGOUT_TIMEOUT_MS,
  reconnectAttempts: RECONNECT_ATTEMPTS,
  reconnectBaseDelayMs: RECONNECT_BASE_DELAY_MS,
  reconnectMaxDelayMs: RECONNECT_MAX_DELAY_MS,
  random: Math.random,
};

export interface ImapMailboxOptions extends MailboxOptions {
  /** Timeouts and backoff; tests shorten them. */
  tuning?: Partial<ImapTuning>;
  /** Called each time the server accepts an IDLE ("+"): tests wait on it instead of sleeping. */
  onIdle?: () => void;
}

/** A FIFO lock: whoever asked first gets the connection first. */
class Lock {
  #tail: Promise<void> = Promise.resolve();
  async acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.#tail;
    this.#tail = prev.then(() => next);
    await prev;
    return release;
  }
}

type IdleEnd = "new" | "refresh" | "preempted" | "aborted" | "dead";

export class ImapMailbox implements Mailbox {
  readonly label: string;
  /** UID STORE + UID EXPUNGE per 16 messages: two round trips, and a crash re-reads at most 16. */
  readonly deleteBatch = 16;
  readonly pollIntervalMs: number;
  #account: Account;
  #opts: ImapMailboxOptions;
  #tuning: ImapTuning;
  #client?: ImapClient;
  #lock = new Lock();
  #closed = false;
  #closing?: Promise<void>;
  #closeCtl = new AbortController();

  #uidValidity?: number;
  /** The server's message count as last reported (EXISTS, minus EXPUNGEs since). */
  #exists = 0;
  /** Bumped each time EXISTS grows: new mail. */
  #arrivals = 0;
  /** #arrivals when the caller last looked (a yield of watch() or the start of list()). */
  #seenArrivals = 0;
  /** Bumped on every successful (re)connect. */
  #generation = 0;
  /** RFC822.SIZE by UID, as list() saw it: fetch() need not ask again (one round trip less per message). */
  #sizes = new Map<number, number>();
  /** UID → the connection generation on which we set \Deleted (re-set after a reconnect). */
  #pendingDeletes = new Map<number, number>();
  /** Operations waiting for the connection: IDLE gives way to them. */
  #waitingOps = 0;
  #idleStop?: () => void;
  #arrivalListeners = new Set<() => void>();
  #idleRefused = false;

  private constructor(account: Account, opts: ImapMailboxOptions) {
    this.#account = account;
    this.#opts = opts;
    this.#tuning = {
      ...DEFAULT_TUNING,
      ...(opts.idleRenewMs ? { idleRefreshMs: opts.idleRenewMs } : {}),
      ...opts.tuning,
    };
    this.pollIntervalMs = opts.pollIntervalMs ?? durationParam(account, "poll", DEFAULT_POLL_INTERVAL_MS);
    const user = account.user ? `${encodeURIComponent(account.user)}@` : "";
    this.label =
      `${account.scheme}://${user}${account.host}:${account.port}/${encodeURIComponent(account.path)}` +
      (account.tls === "none" ? "?tls=none" : "");
  }

  /** Connects, logs in and selects; the first attempt's failure is reported as is (no retries). */
  static async open(account: Account, opts: ImapMailboxOptions = {}): Promise<ImapMailbox> {
    const mb = new ImapMailbox(account, opts);
    const release = await mb.#lock.acquire();
    try {
      await mb.#connect();
    } finally {
      release();
    }
    return mb;
  }

  /** Capabilities of the current connection (tests and diagnostics). */
  get capabilities(): ReadonlySet<string> {
    return this.#client?.capabilities ?? new Set();
  }

  /** The junk folder of this account (SPECIAL-USE \Junk or a usual name), if it has one. */
  async junkFolder(): Promise<string | undefined> {
    return await this.#op(
      "list folders",
      async (c) => findJunkFolder(await listMailboxes(c), this.#account.path),
    );
  }

  async list(marker: string): Promise<MessageInfo[]> {
    return await this.#op("list", async (c) => {
      this.#seenArrivals = this.#arrivals;
      let uids = await searchSubject(c, marker);
      // A server may announce mail that arrived during the SEARCH only after its results
      // (Dovecot syncs the view at the end of a command): search once more so none is missed.
      if (this.#arrivals !== this.#seenArrivals) {
        this.#seenArrivals = this.#arrivals;
        uids = await searchSubject(c, marker);
      }
      if (uids.length === 0) return [];
      const validity = this.#uidValidity!;
      const out: MessageInfo[] = [];
      this.#sizes.clear();
      for (const h of (await fetchHeaders(c, uids)).sort((a, b) => a.uid - b.uid)) {
        // Bounded and never throws: unreadable headers give "" and fall back to the server's date.
        const parsed = parseHeader(h.header);
        const subject = parsed.subject;
        let date = parsed.date;
        // The server matched; matching again here keeps "never touch other mail" true even for a
        // server whose SEARCH is fuzzier than a substring match.
        if (!subjectHasMarker(subject, marker)) continue;
        date ??= h.internalDate;
        this.#sizes.set(h.uid, h.size);
        const info: MessageInfo = { id: `${validity}:${h.uid}`, subject, size: h.size };
        out.push(date ? { ...info, date } : info);
      }
      return out;
    });
  }

  async listReports(): Promise<MessageInfo[]> {
    return await this.#op("list", async (c) => {
      const uids = await searchHeader(c, "Content-Type", "delivery-status");
      if (uids.length === 0) return [];
      const validity = this.#uidValidity!;
      return (await fetchHeaders(c, uids)).sort((a, b) => a.uid - b.uid).map((h) => {
        const info: MessageInfo = { id: `${validity}:${h.uid}`, subject: "", size: h.size };
        return h.internalDate ? { ...info, date: h.internalDate } : info;
      });
    });
  }

  async fetch(id: string, maxBytes: number): Promise<Uint8Array> {
    return await this.#op("fetch", (c) => this.#fetchOne(c, id, maxBytes));
  }

  /**
   * The bodies whose sizes list() saw and that fit go in one UID FETCH; the rest (and all of them,
   * should that command refuse a body as too large) one by one, as fetch() does.
   */
  async fetchMany(ids: readonly string[], maxBytes: number): Promise<(Uint8Array | MailError)[]> {
    return await this.#op("fetch", async (c) => {
      const out: (Uint8Array | MailError | undefined)[] = ids.map(() => undefined);
      const together = new Map<number, number>();
      ids.forEach((id, i) => {
        const uid = this.#uidOf(id);
        const size = uid === undefined ? undefined : this.#sizes.get(uid);
        if (uid !== undefined && size !== undefined && size <= maxBytes) together.set(uid, i);
      });
      if (together.size > 1) {
        let bodies: Map<number, Uint8Array> | undefined;
        try {
          bodies = await fetchBodies(c, [...together.keys()], maxBytes);
        } catch (err) {
          if (!(err instanceof MailError && err.code === "too_large")) throw err;
        }
        for (const [uid, i] of bodies ? together : []) {
          this.#sizes.delete(uid);
          out[i] = bodies!.get(uid) ?? this.#notFound(ids[i]);
        }
      }
      for (const [i, id] of ids.entries()) {
        if (out[i] !== undefined) continue;
        try {
          out[i] = await this.#fetchOne(c, id, maxBytes);
        } catch (err) {
          if (!(err instanceof MailError && (err.code === "too_large" || err.code === "not_found"))) {
            throw err;
          }
          out[i] = err;
        }
      }
      return out as (Uint8Array | MailError)[];
    });
  }

  async #fetchOne(c: ImapClient, id: string, maxBytes: number): Promise<Uint8Array> {
    const uid = this.#uidOf(id);
    if (uid === undefined) throw this.#notFound(id);
    const known = this.#sizes.get(uid);
    this.#sizes.delete(uid);
    // A message's size never changes (RFC 3501 §2.3.4): what list() saw still holds.
    const size = known ?? await fetchSize(c, uid);
    if (size === undefined) throw this.#notFound(id);
    if (size > maxBytes) {
      throw new MailError(
        `Message ${id} in ${this.label} is ${size} bytes, over the ${maxBytes}-byte cap; not downloaded.`,
        "too_large",
      );
    }
    let body: Uint8Array | undefined;
    try {
      body = await fetchBody(c, uid, maxBytes);
    } catch (err) {
      if (err instanceof MailError && err.code === "too_large") {
        throw new MailError(
          `Message ${id} in ${this.label} turned out larger than the ${maxBytes}-byte cap; not downloaded.`,
          "too_large",
          { cause: err },
        );
      }
      throw err;
    }
    if (body === undefined) throw this.#notFound(id);
    if (body.length > maxBytes) {
      throw new MailError(
        `Message ${id} in ${this.label} is ${body.length} bytes, over the ${maxBytes}-byte cap.`,
        "too_large",
      );
    }
    return body;
  }

  async delete(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#op("delete", async (c) => {
      const uids = ids.map((id) => this.#uidOf(id)).filter((u): u is number => u !== undefined);
      if (uids.length === 0) return;
      await storeDeleted(c, uids);
      for (const u of uids) this.#pendingDeletes.set(u, this.#generation);
    });
  }

  async quarantine(ids: readonly string[], folder: string): Promise<void> {
    if (ids.length === 0) return;
    await this.#op("quarantine", async (c) => {
      const uids = ids.map((id) => this.#uidOf(id)).filter((u): u is number => u !== undefined);
      if (uids.length === 0) return;
      if ((await moveTo(c, uids, folder)) === "copied") {
        for (const u of uids) this.#pendingDeletes.set(u, this.#generation);
      }
    });
  }

  async commit(): Promise<void> {
    if (this.#pendingDeletes.size === 0) return;
    await this.#op("commit", async (c) => {
      const uids = [...this.#pendingDeletes.keys()];
      if (uids.length === 0) return;
      // \Deleted set on a connection that later dropped may not have reached the server's storage.
      const stale = uids.filter((u) => this.#pendingDeletes.get(u) !== this.#generation);
      if (stale.length > 0) await storeDeleted(c, stale);
      await expunge(c, uids);
      for (const u of uids) this.#pendingDeletes.delete(u);
    });
  }

  async *watch(signal: AbortSignal): AsyncIterable<void> {
    if (signal.aborted || this.#closed) return;
    let generation = this.#generation;
    this.#seenArrivals = this.#arrivals;
    yield;
    while (!signal.aborted && !this.#closed) {
      if (!(await this.#waitForChange(signal, generation))) return;
      generation = this.#generation;
      this.#seenArrivals = this.#arrivals;
      yield;
    }
  }

  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closed = true;
      this.#closeCtl.abort();
      this.#idleStop?.();
      this.#closing = (async () => {
        const release = await this.#lock.acquire();
        try {
          const c = this.#client;
          this.#client = undefined;
          await c?.logout(this.#tuning.logoutTimeoutMs);
        } finally {
          release();
        }
      })();
    }
    await this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /* ---------- connection ---------- */

  #log(line: string): void {
    this.#opts.log?.(line);
  }

  #closedError(): MailError {
    return new MailError(`The mailbox ${this.label} is closed.`, "closed");
  }

  #notFound(id: string): MailError {
    return new MailError(`Message ${id} is no longer in ${this.label}.`, "not_found");
  }

  /** The UID for an id of the current UIDVALIDITY; undefined for a stale or malformed id. */
  #uidOf(id: string): number | undefined {
    const m = /^(\d+):(\d+)$/.exec(id);
    if (!m || Number(m[1]) !== this.#uidValidity) return undefined;
    const uid = Number(m[2]);
    return uid > 0 ? uid : undefined;
  }

  async #connect(): Promise<void> {
    const client = await ImapClient.connect(this.#account, {
      caCerts: this.#opts.caCerts,
      tokens: this.#opts.tokens,
      connectTimeoutMs: this.#tuning.connectTimeoutMs,
      greetingTimeoutMs: this.#tuning.greetingTimeoutMs,
      commandTimeoutMs: this.#tuning.commandTimeoutMs,
    }).catch((err) => {
      throw tlsOfferGone(err, this.#uidValidity !== undefined); // connected before in this run
    });
    try {
      client.onUntagged = (r) => this.#onUntagged(client, r);
      const sel = await select(client, this.#account.path);
      if (this.#uidValidity !== undefined && sel.uidValidity !== this.#uidValidity) {
        this.#log(
          `The mailbox ${this.label} was rebuilt (UIDVALIDITY ${this.#uidValidity} → ${sel.uidValidity}); ` +
            `earlier message ids no longer apply.`,
        );
        this.#pendingDeletes.clear();
        this.#sizes.clear();
      }
      this.#uidValidity = sel.uidValidity;
      this.#exists = sel.exists;
      this.#client = client;
      this.#generation++;
    } catch (err) {
      await client.shutdown();
      throw err;
    }
  }

  /** The current connection, or a new one after a drop (bounded attempts, backoff with jitter). */
  async #ready(signal?: AbortSignal): Promise<ImapClient> {
    if (this.#closed) throw this.#closedError();
    if (this.#client?.usable) return this.#client;
    const old = this.#client;
    this.#client = undefined;
    await old?.shutdown();
    const attempts = Math.max(1, this.#tuning.reconnectAttempts);
    let last: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) {
        const signals = signal ? [this.#closeCtl.signal, signal] : [this.#closeCtl.signal];
        await sleep(backoffDelay(attempt - 1, this.#tuning), ...signals);
      }
      if (this.#closed) throw this.#closedError();
      // A watch that was stopped need not wait out the reconnect; the next operation resumes it.
      if (signal?.aborted) {
        throw new MailError(`Stopped watching ${this.label} while reconnecting.`, "closed");
      }
      try {
        await this.#connect();
        this.#log(`Reconnected to ${this.label} (attempt ${attempt}).`);
        return this.#client!;
      } catch (err) {
        if (!isRetriableError(err)) throw err;
        last = err;
        this.#log(
          `Reconnecting to ${this.label} failed (attempt ${attempt} of ${attempts}): ${
            (err as Error).message
          }`,
        );
      }
    }
    throw new MailError(
      `Cannot reach ${where(this.#account)} again after ${attempts} attempts: ${(last as Error).message}`,
      "connect",
      { cause: last },
    );
  }

  #onUntagged(client: ImapClient, r: ImapResponse): void {
    if (client !== this.#client) return; // a replaced connection, or SELECT still running
    if (r.kind === "data" && r.name === "EXISTS" && r.number !== undefined) {
      // RFC 3501 §7.3.1: EXISTS is the new message count; growth means new mail.
      if (r.number > this.#exists) this.#arrivals++;
      this.#exists = r.number;
    } else if (r.kind === "data" && r.name === "EXPUNGE") {
      // RFC 3501 §7.4.1: each EXPUNGE lowers the count by one without a new EXISTS.
      this.#exists = Math.max(0, this.#exists - 1);
    } else if (
      r.kind === "status" && r.code?.name === "UIDVALIDITY" && Number(r.code.args) !== this.#uidValidity
    ) {
      // The mailbox was rebuilt under us: start over on a fresh connection, which re-checks it.
      void client.shutdown();
    }
    for (const notify of this.#arrivalListeners) notify();
  }

  /** Runs `fn` with the connection, ending an IDLE first; a retriable failure reconnects and retries once. */
  async #op<T>(what: string, fn: (c: ImapClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#closedError();
    this.#waitingOps++;
    this.#idleStop?.();
    let release: () => void;
    try {
      release = await this.#lock.acquire();
    } finally {
      this.#waitingOps--;
    }
    try {
      for (let attempt = 1;; attempt++) {
        const c = await this.#ready();
        try {
          return await fn(c);
        } catch (err) {
          if (attempt === 1 && isRetriableError(err) && !this.#closed) {
            this.#log(
              `Lost the connection to ${this.label} during ${what} (${
                (err as Error).message
              }); reconnecting.`,
            );
            continue;
          }
          throw err;
        }
      }
    } finally {
      release();
    }
  }

  /* ---------- watching ---------- */

  /**
   * Waits until the caller should look again: new mail, or a reconnect (mail may have come while
   * we were away). False when `signal` aborted or the mailbox closed.
   */
  async #waitForChange(signal: AbortSignal, generation: number): Promise<boolean> {
    let noop = false;
    for (;;) {
      if (signal.aborted || this.#closed) return false;
      const release = await this.#lock.acquire();
      let end: IdleEnd | "poll" = "preempted";
      try {
        let c: ImapClient;
        try {
          c = await this.#ready(signal);
        } catch (err) {
          // #ready already retried with backoff; what it throws ends the watch.
          if (signal.aborted || this.#closed) return false;
          throw err;
        }
        if (this.#generation !== generation) return true;
        try {
          // RFC 3501 §6.1.2: NOOP lets the server report EXISTS; without IDLE that is how mail is seen.
          if (noop) await c.command("NOOP");
          noop = false;
          if (this.#arrivals !== this.#seenArrivals) return true;
          if (this.#waitingOps > 0 || signal.aborted || this.#closed) end = "preempted";
          else if (c.capabilities.has("IDLE") && !this.#idleRefused) end = await this.#idle(c, signal);
          else end = "poll";
        } catch (err) {
          if (signal.aborted || this.#closed) return false;
          if (!isRetriableError(err)) throw err;
          this.#log(
            `Lost the connection to ${this.label} while watching (${(err as Error).message}); reconnecting.`,
          );
          continue; // the next round's #ready reconnects; the generation then differs and we yield
        }
      } finally {
        release();
      }
      if (end === "new") return true;
      if (end === "aborted") return false;
      if (end === "poll") {
        await sleep(this.pollIntervalMs, signal, this.#closeCtl.signal);
        noop = true;
      }
    }
  }

  /** One IDLE (RFC 2177): until new mail, the re-issue interval, an operation, abort or a drop. */
  async #idle(c: ImapClient, signal: AbortSignal): Promise<IdleEnd> {
    let handle;
    try {
      handle = await c.idle(this.#tuning.idleRefreshMs + this.#tuning.idleMarginMs);
    } catch (err) {
      if (err instanceof MailError && err.code === "protocol" && c.usable) {
        this.#idleRefused = true;
        this.#log(
          `${this.label} refused IDLE (${err.message}); polling every ${this.pollIntervalMs} ms instead.`,
        );
        return "preempted";
      }
      throw err;
    }
    this.#opts.onIdle?.();
    let finish!: (e: IdleEnd) => void;
    const ended = new Promise<IdleEnd>((r) => (finish = r));
    const check = () => {
      if (this.#arrivals !== this.#seenArrivals) finish("new");
    };
    const onAbort = () => finish("aborted");
    const timer = setTimeout(() => finish("refresh"), this.#tuning.idleRefreshMs);
    signal.addEventListener("abort", onAbort);
    this.#arrivalListeners.add(check);
    this.#idleStop = () => finish("preempted");
    c.dead.then(() => finish("dead"));
    // Things that happened before we listened: EXISTS sent right as IDLE began, an op, an abort.
    check();
    if (this.#waitingOps > 0 || this.#closed) finish("preempted");
    if (signal.aborted) finish("aborted");
    let end: IdleEnd;
    try {
      end = await ended;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      this.#arrivalListeners.delete(check);
      this.#idleStop = undefined;
    }
    if (end === "dead") throw c.failure!;
    await handle.done();
    return end;
  }
}

/** Resolves after `ms`, or at once when any signal aborts. */
