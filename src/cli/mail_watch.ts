/**
 * Saying what happened to mail instead of waiting in silence: the bounces (RFC 3464) that come back
 * for mail this node sent, matched by Message-ID, and the marker mail that did not open (a wrong
 * network key), named by its sender and never by its content.
 */
import type { DeliveryReport } from "../mail/dsn.ts";
import { describeRecipientStatus } from "../mail/dsn.ts";
import type { OutgoingMail, Sender, SentInfo } from "../mail/smtp.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { EventSink, NodeEvent } from "../roles/events.ts";
import type { InboxHandler } from "../roles/inbox.ts";

/** Bounces come within seconds to hours; a sent mail is watched this long. */
export const WATCH_SENT_MS = 6 * 3_600_000;

type Bounced = Extract<NodeEvent, { event: "bounced" }>;

function bare(messageId: string): string {
  return messageId.trim().replace(/^<|>$/g, "").toLowerCase();
}

/** The Message-IDs of mail this node sent, and to whom, so a bounce can be matched to it. */
export class SentMail {
  #sent = new Map<string, { to: string[]; at: number }>();
  /** Addresses a report said our mail will never reach: nothing more is mailed to them. */
  readonly failed = new Set<string>();

  constructor(readonly now: () => number = Date.now) {}

  record(messageId: string, to: readonly string[]): void {
    this.#prune();
    this.#sent.set(bare(messageId), { to: to.map((a) => a.toLowerCase()), at: this.now() });
  }

  /** True while some mail sent in the last WATCH_SENT_MS may still bounce. */
  get watching(): boolean {
    this.#prune();
    return this.#sent.size > 0;
  }

  /**
   * The bounce events for a report about one of our mails (only recipients it was sent to, and
   * only failures and delays); undefined when the report is about someone else's mail.
   */
  match(report: DeliveryReport): Bounced[] | undefined {
    const sent = report.messageId ? this.#sent.get(bare(report.messageId)) : undefined;
    if (!sent) return undefined;
    const hits = report.recipients
      .filter((r) => (r.action === "failed" || r.action === "delayed") && sent.to.includes(r.recipient));
    for (const r of hits) if (r.action === "failed") this.failed.add(r.recipient);
    return hits.map((r) => ({
      event: "bounced" as const,
      address: r.recipient,
      reason: describeRecipientStatus(r),
      ...(r.status ? { status: r.status } : {}),
      final: r.action === "failed",
    }));
  }

  #prune(): void {
    const before = this.now() - WATCH_SENT_MS;
    for (const [id, s] of this.#sent) if (s.at < before) this.#sent.delete(id);
  }
}

/** A Sender that notes each Message-ID it sent. */
export function recordingSender(sender: Sender, sent: SentMail): Sender {
  return {
    get label() {
      return sender.label;
    },
    async send(mail: OutgoingMail): Promise<SentInfo> {
      const info = await sender.send(mail);
      if (info.messageId) sent.record(info.messageId, mail.to);
      return info;
    },
    flush: sender.flush ? () => sender.flush!() : undefined,
    close: () => sender.close(),
    [Symbol.asyncDispose]: () => sender.close(),
  };
}

/**
 * The `reports` option of an InboxReader: bounces of our own mail are deleted, then become events
 * (a "bounced" event may end the command, so it waits until the deletion is committed).
 */
export function bounceReports(sent: SentMail, events: EventSink) {
  let pending: NodeEvent[] = [];
  return {
    wanted: () => sent.watching,
    handle: (_id: string, report: DeliveryReport): "delete" | "keep" => {
      const hits = sent.match(report);
      if (!hits) return "keep";
      pending.push(...hits);
      return "delete";
    },
    settled: () => {
      const out = pending;
      pending = [];
      for (const e of out) events(e);
    },
  };
}

/**
 * Wraps an inbox handler: marker mail that does not open is reported, one line each, with its
 * sender and the reason (most often another network key), before the handler files it away.
 */
export function reportUnreadable(handler: InboxHandler, events: EventSink): InboxHandler {
  return (m) => {
    if (m.message instanceof ProtocolError) {
      events({
        event: "mail_unreadable",
        from: m.mail.from ?? "an unknown sender",
        reason: m.message.message.replace(/\.$/, ""),
        code: m.message.code,
      });
    }
    return handler(m);
  };
}
