/**
 * A daily mail budget (issue 15): free accounts may send a few hundred mails a day (Gmail ~500
 * recipients, Outlook.com ~300 and far fewer for new accounts, Yahoo ~500), and an account that
 * goes over is blocked for up to a day. Every node counts what it sends per account over a rolling
 * 24 hours — the window providers apply — and refuses the least important mail first as the count
 * nears the budget, so a host's own answers and a peer's own requests go out longest. A provider's
 * "you send too much" answer stops sending for a while, doubling each time it is heard again.
 */
import { MailError } from "./errors.ts";

/** What a mail is for, most important first. */
export type MailPriority = "own" | "reply" | "intro" | "sync";

/**
 * The share of the budget each kind may fill. Syncs go first (the periodic one makes good any that
 * is skipped), then introductions (a newcomer still gets its reply and dials), then replies; the
 * last tenth is kept for a node's own requests, so even a busy host can still meet its group.
 */
export const BUDGET_SHARE: Readonly<Record<MailPriority, number>> = {
  own: 1,
  reply: 0.9,
  intro: 0.7,
  sync: 0.5,
};

export const DEFAULT_MAIL_BUDGET = 200;
export const BUDGET_WINDOW_MS = 24 * 3600_000;
/** The first pause after a provider's rate-limit answer; it doubles at each one after, up to a day. */
export const RATE_LIMIT_PAUSE_MS = 15 * 60_000;
export const RATE_LIMIT_MAX_PAUSE_MS = 24 * 3600_000;

/**
 * Mail sent within one minute: [epoch ms of its first, of its last, recipients]. A busy host sends
 * thousands of mails a day; one entry per minute keeps the ledger (read and written at every mail)
 * at most 1,440 entries. A group leaves the window with its last mail: never early.
 */
export type SentGroup = [first: number, last: number, recipients: number];
/** How long after its first mail a group still takes more. */
export const SENT_GROUP_MS = 60_000;

/** What the budget remembers of one account between runs. */
export interface LedgerRecord {
  /** The mail sent in the last 24 hours, oldest first. */
  sent: SentGroup[];
  /** No mail until then: the provider said we send too much. */
  pausedUntil?: number;
  /** Rate-limit answers in a row (the pause doubles with each). */
  strikes?: number;
}

/** Where the counts live: a file in the data folder (ledger.ts), or memory in tests. */
export interface Ledger {
  load(account: string): LedgerRecord;
  save(account: string, record: LedgerRecord): void;
  /** Writes what save() may have held back. */
  flush?(): void;
}

export class MemoryLedger implements Ledger {
  #records = new Map<string, LedgerRecord>();
  load(account: string): LedgerRecord {
    const r = this.#records.get(account);
    return r ? { ...r, sent: r.sent.map((g) => [...g]) } : { sent: [] };
  }
  save(account: string, record: LedgerRecord): void {
    this.#records.set(account, { ...record, sent: record.sent.map((g) => [...g]) });
  }
}

export interface BudgetOptions {
  /** The sending account (its address): counts are per account. */
  account: string;
  /** Recipients a day at most (--mail-budget). */
  limit: number;
  ledger: Ledger;
  clock?: () => number;
}

export class MailBudget {
  readonly account: string;
  readonly limit: number;
  #ledger: Ledger;
  #clock: () => number;
  /** Recipients of mail handed to the server and not answered yet (hold()). */
  #onTheWay = 0;

  constructor(opts: BudgetOptions) {
    this.account = opts.account.toLowerCase();
    this.limit = opts.limit;
    this.#ledger = opts.ledger;
    this.#clock = opts.clock ?? Date.now;
  }

  /** Recipients mailed in the last 24 hours. */
  sent(): number {
    let n = 0;
    for (const g of this.#current().sent) n += g[2];
    return n;
  }

  /** Until when a provider's rate limit stops our sending, if it does now. */
  pausedUntil(): number | undefined {
    const until = this.#current().pausedUntil;
    return until !== undefined && until > this.#clock() ? until : undefined;
  }

  /** Whether `recipients` more of this kind fit its share of the budget (and no pause holds). */
  allows(priority: MailPriority, recipients = 1): boolean {
    if (this.pausedUntil() !== undefined) return false;
    return this.sent() + this.#onTheWay + recipients <= Math.floor(this.limit * BUDGET_SHARE[priority]);
  }

  /**
   * Counts `recipients` against the budget while their mail is on its way, until the returned
   * function is called (then record() counts it if the server took it): mails sent at once (a host
   * answers several requests at a time) must not each pass the check on the same remaining room.
   */
  hold(recipients: number): () => void {
    this.#onTheWay += recipients;
    let held = true;
    return () => {
      if (held) this.#onTheWay -= recipients;
      held = false;
    };
  }

  /** Why mail is held back now, in a few words (for the message that says so). */
  explain(): string {
    const paused = this.pausedUntil();
    if (paused !== undefined) {
      return `the mail provider limits sending from ${this.account} until ${
        new Date(paused).toISOString().slice(11, 16)
      } UTC`;
    }
    return `${this.sent()} of ${this.limit} mails sent in the last 24 hours (--mail-budget)`;
  }

  /**
   * Throws the one-sentence error that says why `priority` mail cannot go now, or returns when it
   * can. Callers that can wait (a host's reply) ask allows() first; this is the backstop.
   */
  check(priority: MailPriority, recipients = 1): void {
    const paused = this.pausedUntil();
    if (paused !== undefined) {
      throw new MailError(
        `The mail provider limits sending from ${this.account}; mailmeet sends again after ${
          new Date(paused).toISOString().slice(11, 16)
        } UTC.`,
        "rate_limited",
      );
    }
    if (this.allows(priority, recipients)) return;
    throw new MailError(
      `${this.account} has sent ${this.sent()} mails in the last 24 hours, near its budget of ${this.limit} (--mail-budget); ` +
        `this ${priority === "own" ? "mail" : priority} waits until older mails leave the 24-hour window.`,
      "budget",
    );
  }

  /** Makes the counts durable (the CLI's way out); also on dispose. */
  flush(): void {
    this.#ledger.flush?.();
  }

  [Symbol.dispose](): void {
    this.flush();
  }

  /** Counts a mail accepted for `recipients` recipients; a success ends a run of rate limits. */
  record(recipients: number): void {
    const r = this.#current();
    const now = this.#clock();
    const last = r.sent.at(-1);
    if (last && now - last[0] < SENT_GROUP_MS && now >= last[1]) {
      last[1] = now;
      last[2] += recipients;
    } else r.sent.push([now, now, recipients]);
    r.strikes = 0;
    this.#ledger.save(this.account, r);
  }

  /** The provider refused for sending too much: no mail for a while (longer each time). */
  rateLimited(): number {
    const r = this.#current();
    r.strikes = (r.strikes ?? 0) + 1;
    const pause = Math.min(RATE_LIMIT_MAX_PAUSE_MS, RATE_LIMIT_PAUSE_MS * 2 ** (r.strikes - 1));
    r.pausedUntil = this.#clock() + pause;
    this.#ledger.save(this.account, r);
    return r.pausedUntil;
  }

  #current(): LedgerRecord {
    const r = this.#ledger.load(this.account);
    const from = this.#clock() - BUDGET_WINDOW_MS;
    r.sent = r.sent.filter((g) => g[1] > from);
    return r;
  }
}
