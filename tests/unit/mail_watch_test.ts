import assert from "node:assert/strict";
import { ProtocolError } from "../../src/protocol/errors.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import type { InboundMail } from "../../src/roles/inbox.ts";
import {
  bounceReports,
  recordingSender,
  reportUnreadable,
  SentMail,
  WATCH_SENT_MS,
} from "../../src/cli/mail_watch.ts";
import type { Sender } from "../../src/mail/smtp.ts";

Deno.test("a bounce is matched to our own mail by Message-ID, and only for the recipients we mailed", async () => {
  let t = 0;
  const sent = new SentMail(() => t);
  const inner: Sender = {
    label: "fake",
    send: () => Promise.resolve({ messageId: "<Req-1@isp-a.test>", response: "250" }),
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  await recordingSender(inner, sent).send({
    from: "a@isp-a.test",
    to: ["host@game.test", "Host2@Gmae.test"],
    subject: "mailmeet rendezvous",
    text: "x",
  });
  const events: NodeEvent[] = [];
  const reports = bounceReports(sent, (e) => events.push(e));
  assert.equal(reports.wanted(), true);
  const report = {
    messageId: "req-1@isp-a.test",
    recipients: [
      {
        recipient: "host2@gmae.test",
        action: "failed",
        status: "5.1.2",
        diagnostic: "Host or domain name not found",
      },
      { recipient: "stranger@x.test", action: "failed", status: "5.1.1" },
      { recipient: "host@game.test", action: "delivered" },
    ],
  };
  assert.equal(reports.handle("1", report), "delete");
  assert.deepEqual(events, [], "said only once the bounce is deleted");
  reports.settled();
  assert.deepEqual(events, [{
    event: "bounced",
    address: "host2@gmae.test",
    reason: "Host or domain name not found",
    status: "5.1.2",
    final: true,
  }]);
  // Someone else's bounce is not ours to read further, nor to delete.
  assert.equal(reports.handle("2", { messageId: "other@x", recipients: [] }), "keep");
  assert.equal(reports.handle("3", { recipients: [] }), "keep");
  // After a while nothing we sent can still bounce: the box is no longer searched for reports.
  t += WATCH_SENT_MS + 1;
  assert.equal(reports.wanted(), false);
});

Deno.test("marker mail that does not open is reported with its sender, then handled as before", async () => {
  const events: NodeEvent[] = [];
  const handled: string[] = [];
  const handler = reportUnreadable((m) => {
    handled.push(m.id);
    return Promise.resolve("quarantine");
  }, (e) => events.push(e));
  const m = {
    id: "7",
    mail: { subject: "mailmeet rendezvous", from: "bob@isp-b.test", recipients: [], text: "secret body" },
    message: new ProtocolError(
      "The message does not open with our network key: it was sealed with another key, or changed on the way.",
      "unsealed",
    ),
    wokeAt: 0,
  } as InboundMail;
  assert.equal(await handler(m), "quarantine");
  assert.deepEqual(handled, ["7"]);
  assert.deepEqual(events, [{
    event: "mail_unreadable",
    from: "bob@isp-b.test",
    reason:
      "The message does not open with our network key: it was sealed with another key, or changed on the way",
    code: "unsealed",
  }]);
  assert.ok(!JSON.stringify(events).includes("secret body"));
});
