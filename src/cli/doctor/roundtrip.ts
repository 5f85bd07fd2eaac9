/** doctor's round trip: a real mail to yourself, seen in the inbox (or its junk folder), then deleted. */
import type { Mailbox, MessageInfo } from "../../mail/mailbox.ts";
import { openMailbox } from "../../mail/open.ts";
import { openSender, type Sender } from "../../mail/smtp.ts";
import { deadlineSignal } from "../../util/deadline.ts";
import type { MailSettings } from "../context.ts";
import { sentenceFor } from "../errors.ts";
import { type CheckResult, fmtMs, ms } from "./check.ts";
import { roundTripFix } from "./fixes.ts";

export async function checkRoundTrip(
  mail: MailSettings,
  waitMs: number,
  report: (c: CheckResult) => void,
): Promise<boolean> {
  const tag = crypto.randomUUID().slice(0, 13);
  const subject = `mailmeet doctor ${tag}`;
  const t0 = performance.now();
  let sender: Sender | undefined;
  let inbox: Mailbox | undefined;
  try {
    sender = openSender(mail.smtp, { caCerts: mail.caCerts, tokens: mail.tokens });
    inbox = await openMailbox(mail.inbox, {
      address: mail.address,
      caCerts: mail.caCerts,
      tokens: mail.tokens,
      pollIntervalMs: mail.pollMs,
    });
    await sender.send({
      from: mail.address,
      to: [mail.address],
      subject,
      text: "A test mail from `mailmeet doctor`, which deletes it once it has arrived.\r\n" +
        "If you can read this, doctor stopped before it could; delete it.\r\n",
    });
    const sentMs = ms(t0);
    const found = await waitForSubject(inbox, subject, waitMs);
    if (!found) {
      report({
        check: "roundtrip",
        status: "fail",
        title: `round trip: a mail to ${mail.address} was accepted for sending but did not arrive within ${
          waitMs / 1000
        } s`,
        fix:
          "Check that --inbox reads the mailbox of --address, and the spam folder; some providers hold mail sent to yourself for a while.",
        ms: ms(t0),
      });
      return false;
    }
    await inbox.delete(found.map((m) => m.id));
    await inbox.commit();
    const junk = found.find((m) => m.junk)?.junk;
    if (junk) {
      report({
        check: "roundtrip",
        status: "warn",
        title: `round trip: a mail to yourself arrived (${
          fmtMs(ms(t0))
        }), but in the junk folder "${junk}"; mailmeet reads it there too, but providers empty it and may delay it`,
        fix:
          `Mark the mail as not spam, or add a filter rule that keeps mail whose subject holds "${mail.marker}" in the inbox.`,
        ms: ms(t0),
      });
      return true;
    }
    report({
      check: "roundtrip",
      status: "ok",
      title: `round trip: a mail to yourself was sent (${fmtMs(sentMs)}), arrived (${
        fmtMs(ms(t0))
      }) and was deleted`,
      ms: ms(t0),
    });
    return true;
  } catch (err) {
    report({
      check: "roundtrip",
      status: "fail",
      title: `round trip: ${sentenceFor(err)}`,
      fix: roundTripFix(err),
      ms: ms(t0),
    });
    return false;
  } finally {
    await sender?.close();
    await inbox?.close();
  }
}

/** Waits (push or polling, bounded by waitMs) until mail with `subject` is in the box; its ids. */
async function waitForSubject(
  inbox: Mailbox,
  subject: string,
  waitMs: number,
): Promise<MessageInfo[] | undefined> {
  // Disposing the limit ends the watch too.
  using limit = deadlineSignal(waitMs);
  for await (const _ of inbox.watch(limit.signal)) {
    if (limit.signal.aborted) break;
    const found = await inbox.list(subject);
    if (found.length) return found;
  }
  return undefined;
}
