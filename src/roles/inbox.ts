/**
 * One loop over a node's inbox: wait for mail (push or poll), open each mailmeet message once and
 * hand it to whoever handles its kind. A message is deleted only when its handler says its work is
 * durable; a handler that fails leaves it in the box and it is tried again after a pause
 * (at-least-once).
 *
 * Deleting goes as the work goes (issue 11): settled messages are removed in small batches during a
 * pass, after `durable()` has made the handlers' records safe, so a crash re-reads at most one batch,
 * and those the handler recorded as done are deleted without doing them again.
 */
import { isRetriableError, MailError } from "../mail/errors.ts";
import { DEFAULT_MAX_MESSAGE_BYTES, type Mailbox } from "../mail/mailbox.ts";
import { type ParsedMail, parseMail } from "../mail/parse.ts";
import { type DeliveryReport, parseDeliveryReport } from "../mail/dsn.ts";
import type { Patience } from "../mail/patience.ts";
import { sleep } from "../mail/backoff.ts";
import { openText } from "../protocol/envelope.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import type { Message } from "../protocol/messages.ts";

export interface InboundMail {
  /** The mailbox's id for this mail (stable across reconnects and restarts). */
  id: string;
  mail: ParsedMail;
  /** The opened message, or why it could not be opened (or read at all). */
  message: Message | ProtocolError;
  /** performance.now() when the pass that found it began (the wake-up): for timing the host. */
  wokeAt: number;
}

/**
 * "delete": its work is durable, remove it. "keep": not ours; leave it and don't look again this run.
 * "later": not now (a host still bootstrapping); leave it and look again on the next pass.
 * "quarantine": marker mail that does not open: set aside (see QUARANTINE_FOLDER).
 */
export type Disposition = "delete" | "keep" | "later" | "quarantine";

/**
 * Where marker mail that does not open goes, on mailboxes with folders (IMAP): kept for a human to
 * look at (a group member with an old key, an attack), out of the way of the inbox. Elsewhere it is
 * deleted.
 */
export const QUARANTINE_FOLDER = "mailmeet-quarantine";

/** Settled messages gathered before they are removed, where the mailbox does not say otherwise. */
export const DEFAULT_DELETE_BATCH = 16;
/** After a handler failed (its mail stays), the next pass comes this soon even without new mail. */
export const RETRY_PASS_MS = 5_000;

export type InboxHandler = (m: InboundMail) => Promise<Disposition>;

/** A mail fetched and read, or "skip" (gone, or too large to be ours). */
type Fetched = { mail: ParsedMail; message: Message | ProtocolError } | "skip";

/** The reader waits for its handlers (InboxOptions.onStall). */
export interface Stall {
  /** Handlers at work, all of which it waits for. */
  working: number;
  /** Whether this pass has more mail to hand out once one finishes. */
  more: boolean;
}

export interface InboxOptions {
  marker: string;
  key: NetworkKey;
  maxBytes?: number;
  /** Called for mail skipped before any handler saw it (too large, unreadable). */
  onSkip?: (id: string, reason: string) => void;
  /**
   * Called when a handler failed: the mail stays in the box and is tried again (after RETRY_PASS_MS
   * when the failure may pass, else at the next wake-up).
   */
  onError?: (id: string, err: unknown) => void;
  /**
   * Bounces (RFC 3464 delivery status notifications), looked at on each pass while `wanted()`:
   * `handle` says "delete" for a report about our own mail (it is used up), "keep" for any other;
   * `settled` runs once the deletions are committed (what a report causes — a command that gives
   * up — must not outrun the deletion of the report, or the bounce would stay in the box).
   */
  reports?: {
    wanted(): boolean;
    handle(id: string, report: DeliveryReport): "delete" | "keep";
    settled?(): void;
  };
  /**
   * Mails handled at once (default 1: one after the other). A host answers a few at once: each
   * reply waits for the mail server's answer, and one mail server takes several at a time.
   */
  concurrency?: number;
  /** Makes what the handlers recorded durable; called before any deletion is made permanent. */
  durable?: () => void | Promise<void>;
  /**
   * Called whenever the reader waits for its handlers, and again each time one finished and it
   * still waits: it can hand out no more until one of them finishes (`working` are at work, the
   * most it runs), or the pass has no more to hand out (`more` false). Handlers that hold work
   * back to do it together (a host's round of replies, src/roles/host.ts) must start it when all
   * the handlers it waits for are theirs, or when no more is coming.
   */
  onStall?: (stall: Stall) => void;
  /**
   * Called when a pass has handled what it found, after its deletions: work the handlers gather
   * across a burst of mail and do once (a host's introductions, src/roles/host.ts).
   */
  afterPass?: () => Promise<void>;
  /**
   * Called by run() after the first pass of its watch: the box has been read and any mail from now
   * on wakes the reader. A peer sends its request after this, so the reply finds a watch already
   * waiting (not one still being set up, nor a second pass over mail it has just read).
   */
  onWatching?: () => void;
  /** Keeps run() going through mail server outages until its deadline; without it the first failure ends run(). */
  patience?: Patience;
  /** The pause before a retry pass (tests shorten it). */
  retryPassMs?: number;
}

export class InboxReader {
  /** Ids settled in this run (handled and kept, or deleted), so a wake-up never reopens them. */
  #settled = new Set<string>();
  /** The same for delivery reports. */
  #settledReports = new Set<string>();
  #toDelete: string[] = [];
  #toQuarantine: string[] = [];
  /** A handler failed in the last pass: its mail waits for a retry pass. */
  #failed = false;

  constructor(readonly mailbox: Mailbox, readonly opts: InboxOptions) {}

  /** One pass over what is in the box now. Returns how many messages were handled. */
  async pass(handler: InboxHandler): Promise<number> {
    const wokeAt = performance.now();
    this.#failed = false;
    const list = await this.mailbox.list(this.opts.marker);
    let handled = 0;
    const present = new Set(list.map((m) => m.id));
    for (const id of this.#settled) if (!present.has(id)) this.#settled.delete(id);
    // Oldest first: requests are answered in the order they were sent (Date has whole seconds;
    // the sort is stable, so within a second the mailbox's own arrival order stands).
    const fresh = list.filter((m) => !this.#settled.has(m.id)).sort((a, b) =>
      (a.date?.getTime() ?? 0) - (b.date?.getTime() ?? 0)
    );
    let finished = false;
    // Up to `concurrency` handlers work at once (a host waits on a mail server's answer to each
    // reply); the next mail is fetched and read meanwhile, one ahead. A mailbox that fetches
    // several in one exchange (IMAP) is asked for as many as handlers work at once, together.
    const limit = Math.max(1, this.opts.concurrency ?? 1);
    const together = this.mailbox.fetchMany ? limit : 1;
    const fetched = new Map<number, Promise<Fetched>>();
    const ahead = (i: number) => {
      if (i >= fresh.length) return undefined;
      if (!fetched.has(i)) {
        const batch = fresh.slice(i, i + together);
        const all = batch.length > 1 ? this.#fetchMany(batch) : undefined;
        batch.forEach((info, k) => {
          const p = all ? all.then((r) => r[k]) : this.#fetch(info);
          p.catch(() => {}); // seen when awaited; an abandoned one (a failed pass) is moot
          fetched.set(i + k, p);
        });
      }
      const p = fetched.get(i)!;
      fetched.delete(i);
      return p;
    };
    const working = new Set<Promise<void>>();
    /** A permanent mail failure no onError takes: it ends the pass once the others are done. */
    let fatal: { err: unknown } | undefined;
    const work = async (id: string, mail: ParsedMail, message: Message | ProtocolError) => {
      let disposition: Disposition;
      try {
        disposition = await handler({ id, mail, message, wokeAt });
      } catch (err) {
        if (err instanceof MailError && !isRetriableError(err) && this.opts.onError === undefined) {
          fatal ??= { err };
          return;
        }
        // A failure that may pass (a server restarting) gets a retry pass soon; a permanent one
        // (a 5xx) waits for the next wake-up instead of hammering the server every few seconds.
        if (isRetriableError(err)) this.#failed = true;
        this.opts.onError?.(id, err);
        return;
      }
      handled++;
      if (disposition === "later") return;
      this.#settled.add(id);
      if (disposition === "quarantine") this.#toQuarantine.push(id);
      else if (disposition === "delete") this.#toDelete.push(id);
    };
    let next = ahead(0);
    try {
      for (let i = 0; i < fresh.length && !fatal; i++) {
        const info = fresh[i];
        const got = await next!;
        next = ahead(i + 1);
        if (got === "skip") continue;
        const run = work(info.id, got.mail, got.message);
        working.add(run);
        void run.finally(() => working.delete(run));
        if (working.size >= limit) {
          this.opts.onStall?.({ working: working.size, more: i + 1 < fresh.length });
          await Promise.race(working);
        }
        if (this.#toDelete.length + this.#toQuarantine.length >= this.#batch) await this.#flush();
      }
      await this.#drain(working);
      if (fatal) throw fatal.err;
      finished = true;
    } finally {
      await this.#drain(working);
      // What was settled before a failure is still removed if the mailbox lets us; if not, it stays
      // queued for the next pass, and the handlers' records keep it from being done twice.
      if (finished) await this.#flush();
      else await this.#flush().catch(() => {});
      await this.opts.afterPass?.();
    }
    await this.#reports();
    return handled;
  }

  /** Waits for every handler at work, saying so (onStall) each time one finished and others remain. */
  async #drain(working: Set<Promise<void>>): Promise<void> {
    while (working.size > 0) {
      this.opts.onStall?.({ working: working.size, more: false });
      await Promise.race(working);
    }
  }

  /** Reads the bounces in the box once each; those about our mail are deleted, then settled. */
  async #reports(): Promise<void> {
    const reports = this.opts.reports;
    if (!reports?.wanted() || !this.mailbox.listReports) return;
    const list = await this.mailbox.listReports();
    const present = new Set(list.map((m) => m.id));
    for (const id of this.#settledReports) if (!present.has(id)) this.#settledReports.delete(id);
    let deleted = false;
    for (const info of list) {
      if (this.#settledReports.has(info.id)) continue;
      this.#settledReports.add(info.id);
      let raw: Uint8Array;
      try {
        raw = await this.mailbox.fetch(info.id, this.opts.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
      } catch (err) {
        if (err instanceof MailError && (err.code === "too_large" || err.code === "not_found")) continue;
        throw err;
      }
      const report = parseDeliveryReport(raw);
      if (report && reports.handle(info.id, report) === "delete") {
        await this.mailbox.delete([info.id]);
        deleted = true;
      }
    }
    if (deleted) await this.mailbox.commit();
    reports.settled?.();
  }

  /**
   * Passes on every wake-up until `signal` aborts; after a handler failure, also RETRY_PASS_MS later.
   * With `patience`, a mail server that stops answering is waited for (until its deadline).
   */
  async run(signal: AbortSignal, handler: InboxHandler): Promise<void> {
    const patience = this.opts.patience;
    while (!signal.aborted) {
      try {
        await this.#watch(signal, handler);
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (!patience) throw err;
        await patience.wait("reading", err, signal);
      }
    }
  }

  async #watch(outer: AbortSignal, handler: InboxHandler): Promise<void> {
    // Its own signal: a watch left behind by a failure must end before the next one starts, or two
    // would share (and steal wake-ups from) one connection.
    const ctl = new AbortController();
    const signal = AbortSignal.any([outer, ctl.signal]);
    const it = this.mailbox.watch(signal)[Symbol.asyncIterator]();
    let next = it.next();
    let told = false;
    try {
      for (;;) {
        let woke: IteratorResult<void> | "retry";
        if (this.#failed) {
          const pause = new AbortController();
          woke = await Promise.race([
            next,
            sleep(this.opts.retryPassMs ?? RETRY_PASS_MS, signal, pause.signal).then(() => "retry" as const),
          ]);
          pause.abort();
        } else woke = await next;
        if (signal.aborted) return;
        if (woke !== "retry") {
          if (woke.done) return;
          next = it.next();
        }
        await this.pass(handler);
        this.opts.patience?.ok("reading");
        if (!told) {
          told = true;
          this.opts.onWatching?.();
        }
      }
    } finally {
      ctl.abort();
      // Whatever the abandoned watch still says (a failure while we were failing anyway) is moot.
      next.catch(() => {});
      Promise.resolve(it.return?.()).catch(() => {});
    }
  }

  /** One mail fetched and read, or "skip" when it is gone or too large (reported and settled). */
  async #fetch(info: { id: string }): Promise<Fetched> {
    try {
      return this.#opened(info.id, await this.mailbox.fetch(info.id, this.#maxBytes));
    } catch (err) {
      if (err instanceof MailError) return this.#opened(info.id, err);
      throw err;
    }
  }

  /** Several, in one exchange with the server (Mailbox.fetchMany), each as #fetch gives it. */
  async #fetchMany(infos: readonly { id: string }[]): Promise<Fetched[]> {
    const got = await this.mailbox.fetchMany!(infos.map((m) => m.id), this.#maxBytes);
    return infos.map((info, i) => this.#opened(info.id, got[i]));
  }

  get #maxBytes(): number {
    return this.opts.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  /** A fetched mail read, or "skip" for one gone or too large; another failure is thrown. */
  #opened(id: string, got: Uint8Array | MailError): Fetched {
    if (!(got instanceof MailError)) return read(got, this.opts.key);
    if (got.code === "too_large") {
      // Not one of ours (they are a few KiB): leave it for its owner, never read it again.
      this.opts.onSkip?.(id, got.message);
      this.#settled.add(id);
      return "skip";
    }
    if (got.code === "not_found") return "skip";
    throw got;
  }

  get #batch(): number {
    return Math.max(1, this.mailbox.deleteBatch ?? DEFAULT_DELETE_BATCH);
  }

  /** Removes what was settled so far, once the handlers' records are durable. */
  async #flush(): Promise<void> {
    if (this.#toDelete.length + this.#toQuarantine.length === 0) return;
    // What is settled now, before durable(): handlers still at work settle into the next batch.
    const quarantine = this.#toQuarantine;
    const del = this.#toDelete;
    this.#toQuarantine = [];
    this.#toDelete = [];
    let quarantined = quarantine.length === 0;
    try {
      await this.opts.durable?.();
      if (!quarantined) {
        if (this.mailbox.quarantine) await this.mailbox.quarantine(quarantine, QUARANTINE_FOLDER);
        else await this.mailbox.delete(quarantine);
        quarantined = true;
      }
      if (del.length > 0) await this.mailbox.delete(del);
      await this.mailbox.commit();
    } catch (err) {
      // Not removed yet: tried again with the next batch.
      if (!quarantined) this.#toQuarantine.unshift(...quarantine);
      this.#toDelete.unshift(...del);
      throw err;
    }
  }
}

/**
 * Reads and opens one mail. Never throws: a mail that cannot be read (nested too deep, no end of
 * header, no block, another key, anything unexpected) comes back as a ProtocolError for the
 * handler to set aside — one poisoned mail must not take a node down (issue 11).
 */
function read(raw: Uint8Array, key: NetworkKey): { mail: ParsedMail; message: Message | ProtocolError } {
  let mail: ParsedMail;
  try {
    mail = parseMail(raw);
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    return {
      mail: { subject: "", recipients: [], text: "" },
      message: new ProtocolError(`The mail cannot be read: ${text}.`, "malformed", { cause: err }),
    };
  }
  if (mail.problem) {
    return { mail, message: new ProtocolError(`The mail cannot be read: ${mail.problem}.`, "malformed") };
  }
  try {
    return { mail, message: openText(key, mail.text) };
  } catch (err) {
    if (err instanceof ProtocolError) return { mail, message: err };
    const text = err instanceof Error ? err.message : String(err);
    return {
      mail,
      message: new ProtocolError(`The mail cannot be opened: ${text}.`, "malformed", { cause: err }),
    };
  }
}
