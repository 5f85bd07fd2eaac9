/**
 * One mail hop on the real stack: SMTP 250 at the sender → the recipient's watch wakes with the
 * new message (IMAP IDLE push, or POP3 polling). This is B, the yardstick of every rendezvous figure.
 */
import { openMailbox } from "../../src/mail/open.ts";
import { openSender, type Sender } from "../../src/mail/smtp.ts";
import type { Mailbox } from "../../src/mail/mailbox.ts";
import type { MailStack } from "../../tests/helpers/mailstack.ts";

const MARKER = "mailmeet bench hop";

export interface HopSamples {
  /** send() called → 250 accepted. */
  submit: number[];
  /** 250 → the recipient sees the message. */
  hop: number[];
}

/** A sender and a watched mailbox kept open, so hops of several kinds can be measured in turn (A B A B). */
export class HopMeter implements AsyncDisposable {
  #n = 0;
  private constructor(
    readonly kind: "imap" | "pop3",
    readonly pollMs: number,
    readonly from: string,
    readonly to: string,
    readonly sender: Sender,
    readonly box: Mailbox,
    readonly ctl: AbortController,
    readonly it: AsyncIterator<void>,
  ) {}

  static async open(stack: MailStack, kind: "imap" | "pop3", pollMs = 2000): Promise<HopMeter> {
    const from = stack.freshAddress("bench-from", "isp-a.test");
    const to = stack.freshAddress("bench-to", "isp-b.test");
    const sender = openSender(stack.url("submission", from), { caCerts: [stack.caPem] });
    const box = await openMailbox(stack.url(kind, to), { caCerts: [stack.caPem], pollIntervalMs: pollMs });
    const ctl = new AbortController();
    const it = box.watch(ctl.signal)[Symbol.asyncIterator]();
    await it.next(); // the immediate first wake-up
    return new HopMeter(kind, pollMs, from, to, sender, box, ctl, it);
  }

  /** One hop: { submit, hop } in ms. */
  async hop(): Promise<{ submit: number; hop: number }> {
    const subject = `${MARKER} ${this.#n++}`;
    // Send at a random phase of the polling cycle, as real mail would arrive (not right after a poll).
    if (this.kind === "pop3") await new Promise((r) => setTimeout(r, Math.random() * this.pollMs));
    const t0 = performance.now();
    await this.sender.send({ from: this.from, to: [this.to], subject, text: `hop ${this.#n}` });
    const t250 = performance.now();
    let seen: string | undefined;
    while (!seen) {
      const r = await this.it.next();
      if (r.done) throw new Error("the watch ended");
      seen = (await this.box.list(subject)).find((m) => m.subject === subject)?.id;
    }
    const tSeen = performance.now();
    await this.box.delete([seen]);
    await this.box.commit();
    return { submit: t250 - t0, hop: tSeen - t250 };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.ctl.abort();
    await this.it.return?.();
    await this.box.close();
    await this.sender.close();
  }
}

export async function measureHops(
  stack: MailStack,
  kind: "imap" | "pop3",
  runs: number,
  pollMs = 2000,
): Promise<HopSamples> {
  await using meter = await HopMeter.open(stack, kind, pollMs);
  const out: HopSamples = { submit: [], hop: [] };
  for (let i = 0; i < runs; i++) {
    const h = await meter.hop();
    out.submit.push(h.submit);
    out.hop.push(h.hop);
  }
  return out;
}
