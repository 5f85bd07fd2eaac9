/**
 * The Mailbox interface over POP3 sessions. POP3 shows a frozen snapshot per session and removes
 * messages only when a session ends with QUIT (RFC 1939 §6), so:
 * - deletions the caller asked for are kept here (`#pending`) and re-marked with DELE in every new
 *   session; only commit() sends QUIT on a session holding them;
 * - every other end of a session (poll refresh, close, reconnect) first unmarks with RSET or simply
 *   drops the connection, which never enters the UPDATE state;
 * - polling for new mail means starting a new session.
 */
import { type Account, durationParam, where } from "../account.ts";
import { CONNECT_TIMEOUT_MS } from "../connection.ts";
import { isDeliveryReport } from "../dsn.ts";
import { isRetriableError, MailError, tlsOfferGone, tlsOfferMissingOnce } from "../errors.ts";
import { type Mailbox, type MailboxOptions, type MessageInfo, subjectHasMarker } from "../mailbox.ts";
import { parseHeader } from "../parse.ts";
import { Pop3Session, type SessionOptions } from "./session.ts";
import { backoffDelay, sleep } from "../backoff.ts";

export const DEFAULT_POLL_INTERVAL_MS = 2_000;
export const GREETING_TIMEOUT_MS = 15_000;
export const COMMAND_TIMEOUT_MS = 30_000;
/** RSET/QUIT when leaving a session: nothing is lost by giving up on them sooner. */
export const LOGOUT_TIMEOUT_MS = 5_000;
export const RECONNECT_ATTEMPTS = 6;
export const RECONNECT_BASE_DELAY_MS = 250;
export const RECONNECT_MAX_DELAY_MS = 5_000;
/**
 * watch() also yields when this long has passed without a yield, new mail or not: a caller whose
 * handler failed leaves the message in the box "for the next wake-up", and that must come.
 */
export const WATCH_RECHECK_MS = 30_000;

export interface Pop3Tuning {
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  commandTimeoutMs: number;
  logoutTimeoutMs: number;
  /** Connection attempts per reconnect, the first one immediate. */
  reconnectAttempts: number;
  reconnectBaseDelayMs: number;
  reconnectMaxDelayMs: number;
  /** [0, 1) source for the backoff jitter. */
  random: () => number;
}

export const DEFAULT_TUNING: Pop3Tuning = {
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  greetingTimeoutMs: GREETING_TIMEOUT_MS,
  commandTimeoutMs: COMMAND_TIMEOUT_MS,
  logoutTimeoutMs: LOGOUT_TIMEOUT_MS,
  reconnectAttempts: RECONNECT_ATTEMPTS,
  reconnectBaseDelayMs: RECONNECT_BASE_DELAY_MS,
  reconnectMaxDelayMs: RECONNECT_MAX_DELAY_MS,
  random: Math.random,
};

interface Header {
  subject: string;
  date?: Date;
  /** A delivery status notification (RFC 3464). */
  report?: boolean;
}

export class Pop3Mailbox implements Mailbox {
  readonly label: string;
  /**
   * Only QUIT removes what DELE marked (RFC 1939 §6), and it ends the session: commit in bigger
   * batches. What a crash leaves behind is known as answered to the host and deleted unanswered.
   */
  readonly deleteBatch = 100;
  readonly pollIntervalMs: number;
  #account: Account;
  #opts: MailboxOptions;
  #tuning: Pop3Tuning;
  #session?: Pop3Session;
  /** UIDLs the caller deleted and has not committed yet. */
  #pending = new Set<string>();
  /** Subject and Date by UIDL: a UIDL names the same message for ever (RFC 1939 §7), so TOP once. */
  #headers = new Map<string, Header>();
  /** The UIDLs of the most recent snapshot: watch() compares the next one with it. */
  #lastIds: ReadonlySet<string> = new Set();
  /** Sessions lost to a failure and replaced; watch() yields after each. */
  #losses = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing = new AbortController();

  private constructor(account: Account, opts: MailboxOptions, tuning: Pop3Tuning) {
    this.#account = account;
    this.#opts = opts;
    this.#tuning = tuning;
    const user = account.user ? `${encodeURIComponent(account.user)}@` : "";
    this.label = `${account.scheme}://${user}${account.host}:${account.port}`;
    this.pollIntervalMs = durationParam(account, "poll", opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
  }

  /**
   * Opens the first session. A wrong password or certificate fails at once; a server that is
   * restarting or resets the connection gets the same bounded backoff as a reconnect.
   */
  static async open(
    account: Account,
    opts: MailboxOptions = {},
    tuning: Partial<Pop3Tuning> = {},
  ): Promise<Pop3Mailbox> {
    if (account.scheme !== "pop3" && account.scheme !== "pop3s") {
      throw new MailError(
        `A POP3 mailbox needs a pop3:// or pop3s:// URL, not ${account.scheme}://.`,
        "config",
      );
    }
    const mailbox = new Pop3Mailbox(account, opts, { ...DEFAULT_TUNING, ...tuning });
    mailbox.#adopt(await mailbox.#connect());
    return mailbox;
  }

  list(marker: string): Promise<MessageInfo[]> {
    return this.#op(async (s) => {
      const out = await this.#listWhere(s, (head) => subjectHasMarker(head.subject, marker));
      for (const id of this.#headers.keys()) if (!s.messages.has(id)) this.#headers.delete(id);
      return out;
    }, { refreshAfterMs: this.pollIntervalMs });
  }

  listReports(): Promise<MessageInfo[]> {
    return this.#op((s) => this.#listWhere(s, (head) => head.report === true), {
      refreshAfterMs: this.pollIntervalMs,
    });
  }

  /** The messages not deleted whose header `keep` takes; each header is fetched (TOP n 0) once. */
  async #listWhere(s: Pop3Session, keep: (head: Header) => boolean): Promise<MessageInfo[]> {
    const out: MessageInfo[] = [];
    for (const [id, { n, size }] of s.messages) {
      if (s.deleted.has(id)) continue;
      let head = this.#headers.get(id);
      if (!head) {
        head = readHeader(await s.top(n));
        this.#headers.set(id, head);
      }
      if (keep(head)) out.push({ id, subject: head.subject, size, date: head.date });
    }
    return out;
  }

  fetch(id: string, maxBytes: number): Promise<Uint8Array> {
    return this.#op(async (s) => {
      const entry = s.messages.get(id);
      if (!entry) throw new MailError(`Message ${id} is no longer in ${this.label}.`, "not_found");
      if (s.deleted.has(id)) {
        throw new MailError(`Message ${id} in ${this.label} is marked for deletion.`, "not_found");
      }
      const tooLarge = (size: string) =>
        new MailError(`Message ${id} is ${size} bytes, over the ${maxBytes}-byte cap; skipped.`, "too_large");
      if (entry.size > maxBytes) throw tooLarge(String(entry.size));
      try {
        return await s.retr(entry.n, maxBytes, `message ${id}`);
      } catch (err) {
        // LIST understated the size; the session is dropped (it stopped mid-message) and will be replaced.
        if (err instanceof MailError && err.code === "too_large") throw tooLarge("more than " + maxBytes);
        throw err;
      }
    });
  }

  delete(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.#op(async (s) => {
      for (const id of ids) {
        if (!s.messages.has(id)) continue; // unknown or already removed: the interface ignores it
        await s.dele(id);
        this.#pending.add(id);
      }
    });
  }

  commit(): Promise<void> {
    if (this.#pending.size === 0 && !this.#closed) return Promise.resolve();
    return this.#op(async (s) => {
      if (this.#pending.size === 0) return; // a retry found every marked message already removed
      const count = this.#pending.size;
      const st = await s.quit(this.#tuning.commandTimeoutMs);
      if (this.#session === s) this.#session = undefined;
      if (st.kind !== "+OK") {
        // RFC 1939 §6: -ERR here means some marked messages were not removed; the next session marks them again.
        throw new MailError(
          `${s.where} did not confirm removing ${count} message(s): "${st.line}". They may still be there.`,
          "protocol",
          { command: "QUIT", response: st.line },
        );
      }
      for (const id of this.#pending) this.#headers.delete(id);
      this.#pending.clear();
    });
  }

  /**
   * Yields at once; then every poll interval takes a new session (the only way POP3 shows new mail)
   * and yields when its UIDL listing holds an id the previous snapshot did not, or when the
   * connection had been lost and was re-established, or WATCH_RECHECK_MS after the last yield. Not
   * on every poll: each yield makes the caller list() (and its work), and the poll already has the
   * UIDLs to compare for free.
   */
  async *watch(signal: AbortSignal): AsyncIterable<void> {
    if (signal.aborted || this.#closed) return;
    let lastPoll = Date.now();
    yield;
    let lastYield = Date.now();
    while (!signal.aborted && !this.#closed) {
      // Taken after the caller's turn: anything it could not have seen counts as new.
      const baseline = this.#lastIds;
      const losses = this.#losses;
      // A fixed rate, not a pause after each turn: the caller's own time counts toward the interval,
      // so mail waits half an interval on average, not a whole one.
      await sleep(Math.max(0, this.pollIntervalMs - (Date.now() - lastPoll)), signal, this.#closing.signal);
      if (signal.aborted || this.#closed) return;
      lastPoll = Date.now();
      const polled = this.#exclusive(async () => {
        this.#checkOpen();
        await this.#retire();
        return (await this.#ensureSession()).ids;
      });
      polled.catch(() => {}); // if the caller aborts first, the poll finishes (bounded by timeouts) unobserved
      const ids = await untilAborted(polled, signal);
      if (ids === undefined || this.#closed) return;
      const news = [...ids].some((id) => !baseline.has(id));
      if (news || this.#losses !== losses || Date.now() - lastYield >= WATCH_RECHECK_MS) {
        yield;
        lastYield = Date.now();
      }
    }
  }

  /** Ends the session without removing anything that was not committed (RSET, then QUIT). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    await this.#exclusive(() => this.#retire());
    this.#pending.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #sessionOptions(): SessionOptions {
    return {
      caCerts: this.#opts.caCerts,
      tokens: this.#opts.tokens,
      connectTimeoutMs: this.#tuning.connectTimeoutMs,
      greetingTimeoutMs: this.#tuning.greetingTimeoutMs,
      commandTimeoutMs: this.#tuning.commandTimeoutMs,
    };
  }

  #adopt(s: Pop3Session): void {
    this.#session = s;
    this.#lastIds = s.ids;
  }

  #checkOpen(): void {
    if (this.#closed) throw new MailError(`The POP3 mailbox ${this.label} is closed.`, "closed");
  }

  /** One operation at a time: POP3 has no tags, so replies are matched to commands by order alone. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Runs fn on a usable session. If the connection turns out to be gone (server restart, idle
   * logout) fn runs once more on a new session; fn must therefore be safe to repeat, which holds
   * because deletions are re-marked from #pending rather than remembered by the old session.
   */
  #op<T>(fn: (s: Pop3Session) => Promise<T>, opts: { refreshAfterMs?: number } = {}): Promise<T> {
    return this.#exclusive(async () => {
      this.#checkOpen();
      if (
        opts.refreshAfterMs !== undefined && this.#session &&
        Date.now() - this.#session.openedAt > opts.refreshAfterMs
      ) {
        await this.#retire();
      }
      for (let attempt = 1;; attempt++) {
        const s = await this.#ensureSession();
        try {
          return await fn(s);
        } catch (err) {
          if (s.usable || !isRetriableError(err) || attempt > 1) throw err;
          this.#log(`connection lost (${(err as Error).message}); reconnecting`);
          if (this.#session === s) {
            this.#session = undefined;
            this.#losses++;
          }
        }
      }
    });
  }

  async #ensureSession(): Promise<Pop3Session> {
    const current = this.#session;
    if (current?.usable) return current;
    if (current) {
      current.close();
      this.#session = undefined;
      this.#losses++;
      this.#log("the connection was lost; opening a new session");
    }
    const s = await this.#connect();
    try {
      // Re-mark what the caller deleted but has not committed, so this session agrees with #pending.
      for (const id of [...this.#pending]) {
        if (s.messages.has(id)) await s.dele(id);
        else this.#pending.delete(id); // already gone (an earlier QUIT got through, or another client)
      }
    } catch (err) {
      s.close();
      throw err;
    }
    this.#adopt(s);
    return s;
  }

  /** Connection attempts with exponential backoff and jitter, for failures a retry may cure. */
  /** A session was opened in this run (so its TLS offer is known: see tlsOfferGone). */
  #sessionBefore = false;

  async #connect(): Promise<Pop3Session> {
    const attempts = Math.max(1, this.#tuning.reconnectAttempts);
    for (let attempt = 1;; attempt++) {
      this.#checkOpen();
      try {
        const s = await Pop3Session.open(this.#account, this.#sessionOptions());
        if (attempt > 1) this.#log(`reconnected after ${attempt} attempts`);
        this.#sessionBefore = true;
        return s;
      } catch (caught) {
        // A first look without STLS gets a second one (a restarting server); a second settles it.
        const firstLook = !this.#sessionBefore && attempt === 1 && attempts > 1;
        const err = firstLook ? tlsOfferMissingOnce(caught) : tlsOfferGone(caught, this.#sessionBefore);
        if (!isRetriableError(err)) throw err;
        if (attempt >= attempts) {
          throw new MailError(
            `Cannot reach the POP3 server ${
              where(this.#account)
            } after ${attempt} attempts; the last one failed: ${(err as Error).message}`,
            "connect",
            { cause: err },
          );
        }
        const delay = backoffDelay(attempt, this.#tuning);
        this.#log(
          `cannot connect (${(err as Error).message}); retrying in ${delay} ms (attempt ${
            attempt + 1
          } of ${attempts})`,
        );
        await sleep(delay, this.#closing.signal);
      }
    }
  }

  /**
   * Ends the current session without letting it remove anything: RSET first if it marked messages,
   * and if RSET does not succeed, drop the connection instead of sending QUIT.
   */
  async #retire(): Promise<void> {
    const s = this.#session;
    this.#session = undefined;
    if (!s) return;
    if (!s.usable) {
      s.close();
      this.#losses++;
      this.#log("the connection was lost; the next session starts afresh");
      return;
    }
    try {
      if (s.deleted.size > 0 && (await s.rset(this.#tuning.logoutTimeoutMs)).kind !== "+OK") return;
      await s.quit(this.#tuning.logoutTimeoutMs);
    } catch (err) {
      if (isRetriableError(err)) {
        this.#losses++;
        this.#log(`the connection was lost (${(err as Error).message}); the next session starts afresh`);
      }
    } finally {
      s.close();
    }
  }

  #log(line: string): void {
    this.#opts.log?.(`pop3 ${this.label}: ${line}`);
  }
}

/** Subject and Date of a header block, and whether it is a delivery report (RFC 3464). Never throws. */
function readHeader(head: Uint8Array): Header {
  return { ...parseHeader(head), report: isDeliveryReport(head) };
}
/** Waits ms, or less if any signal aborts. */
/** p's value, or undefined as soon as signal aborts. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
