/**
 * One mail hop on the real stack: SMTP 250 at the sender → the recipient's watch wakes with the
 * new message (IMAP IDLE push, or POP3 polling). This is B, the yardstick of every rendezvous figure.
 */
import { openMailbox } from "../../src/mail/open.ts";
import { openSender } from "../../src/mail/smtp.ts";
import type { MailStack } from "../../tests/helpers/mailstack.ts";

const MARKER = "mailmeet bench hop";

export interface HopSamples {
  /** send() called → 250 accepted. */
  submit: number[];
  /** 250 → the recipient sees the message. */
  hop: number[];
}

export async function measureHops(
  stack: MailStack,
  kind: "imap" | "pop3",
  runs: number,
  pollMs = 500,
): Promise<HopSamples> {
  const from = stack.freshAddress("bench-from", "isp-a.test");
  const to = stack.freshAddress("bench-to", "isp-b.test");
  await using sender = openSender(stack.url("submission", from), { caCerts: [stack.caPem] });
  await using box = await openMailbox(stack.url(kind, to), {
    caCerts: [stack.caPem],
    pollIntervalMs: pollMs,
  });
  const ctl = new AbortController();
  const it = box.watch(ctl.signal)[Symbol.asyncIterator]();
  await it.next(); // the immediate first wake-up
  const out: HopSamples = { submit: [], hop: [] };
  try {
    for (let i = 0; i < runs; i++) {
      const subject = `${MARKER} ${i}`;
      // Send at a random phase of the polling cycle, as real mail would arrive (not right after a poll).
      if (kind === "pop3") await new Promise((r) => setTimeout(r, Math.random() * pollMs));
      const t0 = performance.now();
      await sender.send({ from, to: [to], subject, text: `hop ${i}` });
      const t250 = performance.now();
      let seen: string | undefined;
      while (!seen) {
        const r = await it.next();
        if (r.done) throw new Error("the watch ended");
        seen = (await box.list(subject)).find((m) => m.subject === subject)?.id;
      }
      const tSeen = performance.now();
      out.submit.push(t250 - t0);
      out.hop.push(tSeen - t250);
      await box.delete([seen]);
      await box.commit();
    }
  } finally {
    ctl.abort();
    await it.return?.();
  }
  return out;
}
