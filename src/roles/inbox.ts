/**
 * One loop over a node's inbox: wait for mail (push or poll), open each mailmeet message once and
 * hand it to whoever handles its kind. A message is deleted only when its handler says its work is
 * durable; a handler that fails leaves it in the box for the next round (at-least-once).
 */
import { isRetriableError, MailError } from "../mail/errors.ts";
import { DEFAULT_MAX_MESSAGE_BYTES, type Mailbox } from "../mail/mailbox.ts";
import { type ParsedMail, parseMail } from "../mail/parse.ts";
import { type DeliveryReport, parseDeliveryReport } from "../mail/dsn.ts";
import { openText } from "../protocol/envelope.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import type { Message } from "../protocol/messages.ts";

export interface InboundMail {
  /** The mailbox's id for this mail (stable across reconnects and restarts). */
  id: string;
  mail: ParsedMail;
  /** The opened message, or why it could not be opened. */
  message: Message | ProtocolError;
  /** performance.now() when the pass that found it began (the wake-up): for timing the host. */
  wokeAt: number;
}

/**
 * "delete": its work is durable, remove it. "keep": not ours; leave it and don't look again this run.
 * "later": not now (a host still bootstrapping); leave it and look again on the next pass.
 */
export type Disposition = "delete" | "keep" | "later" | "quarantine";

/**
 * Where marker mail that does not open goes, on mailboxes with folders (IMAP): kept for a human to
 * look at (a group member with an old key, an attack), out of the way of the inbox. Elsewhere it is
 * deleted.
 */
export const QUARANTINE_FOLDER = "mailmeet-quarantine";

export type InboxHandler = (m: InboundMail) => Promise<Disposition>;

export interface InboxOptions {
  marker: string;
  key: NetworkKey;
  maxBytes?: number;
  /** Called for mail skipped before any handler saw it (too large, unreadable). */
  onSkip?: (id: string, reason: string) => void;
  /** Called when a handler failed: the mail stays in the box and is tried again on the next wake-up. */
  onError?: (id: string, err: unknown) => void;
  /**
   * Bounces (RFC 3464 delivery status notifications), looked at on each pass while `wanted()`:
   * `handle` says "delete" for a report about our own mail (it is used up), "keep" for any other.
   */
  reports?: {
    wanted(): boolean;
    handle(id: string, report: DeliveryReport): "delete" | "keep";
  };
}

export class InboxReader {
  /** Ids settled in this run (handled and kept, or deleted), so a wake-up never reopens them. */
  #settled = new Set<string>();
  /** The same for delivery reports. */
  #settledReports = new Set<string>();

  constructor(readonly mailbox: Mailbox, readonly opts: InboxOptions) {}

  /** One pass over what is in the box now. Returns how many messages were handled. */
  async pass(handler: InboxHandler): Promise<number> {
    const wokeAt = performance.now();
    const list = await this.mailbox.list(this.opts.marker);
    let handled = 0;
    let deleted = false;
    const present = new Set(list.map((m) => m.id));
    for (const id of this.#settled) if (!present.has(id)) this.#settled.delete(id);
    // Oldest first: requests are answered in the order they were sent (Date has whole seconds;
    // the sort is stable, so within a second the mailbox's own arrival order stands).
    const fresh = list.filter((m) => !this.#settled.has(m.id)).sort((a, b) =>
      (a.date?.getTime() ?? 0) - (b.date?.getTime() ?? 0)
    );
    for (const info of fresh) {
      let raw: Uint8Array;
      try {
        raw = await this.mailbox.fetch(info.id, this.opts.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
      } catch (err) {
        if (err instanceof MailError && err.code === "too_large") {
          // Not one of ours (they are a few KiB): leave it for its owner, never read it again.
          this.opts.onSkip?.(info.id, err.message);
          this.#settled.add(info.id);
          continue;
        }
        if (err instanceof MailError && err.code === "not_found") continue;
        throw err;
      }
      const mail = await parseMail(raw);
      let message: Message | ProtocolError;
      try {
        message = openText(this.opts.key, mail.text);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        message = err;
      }
      let disposition: Disposition;
      try {
        disposition = await handler({ id: info.id, mail, message, wokeAt });
      } catch (err) {
        if (err instanceof MailError && !isRetriableError(err) && this.opts.onError === undefined) throw err;
        this.opts.onError?.(info.id, err);
        continue;
      }
      handled++;
      if (disposition === "later") continue;
      this.#settled.add(info.id);
      if (disposition === "quarantine" && this.mailbox.quarantine) {
        await this.mailbox.quarantine([info.id], QUARANTINE_FOLDER);
        deleted = true;
      } else if (disposition === "delete" || disposition === "quarantine") {
        await this.mailbox.delete([info.id]);
        deleted = true;
      }
    }
    if (await this.#reports()) deleted = true;
    if (deleted) await this.mailbox.commit();
    return handled;
  }

  /** Reads the bounces in the box once each; true when one was deleted. */
  async #reports(): Promise<boolean> {
    const reports = this.opts.reports;
    if (!reports?.wanted() || !this.mailbox.listReports) return false;
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
    return deleted;
  }

  /** Passes on every wake-up until `signal` aborts. */
  async run(signal: AbortSignal, handler: InboxHandler): Promise<void> {
    for await (const _ of this.mailbox.watch(signal)) {
      if (signal.aborted) break;
      await this.pass(handler);
    }
  }
}
