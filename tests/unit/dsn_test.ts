import assert from "node:assert/strict";
import { describeRecipientStatus, isDeliveryReport, parseDeliveryReport } from "../../src/mail/dsn.ts";

const enc = new TextEncoder();
const crlf = (s: string) => enc.encode(s.replace(/\r?\n/g, "\r\n"));

Deno.test("a real Postfix bounce names the recipient, the status, the server's words and our Message-ID", async () => {
  const raw = await Deno.readFile(new URL("../fixtures/dsn_postfix_unknown_domain.eml", import.meta.url));
  const r = parseDeliveryReport(raw);
  assert.ok(r);
  assert.equal(r.messageId, "aaac873f-a181-bc38-d6ab-7da8f6ab503c@isp-a.test");
  assert.deepEqual(r.recipients, [{
    recipient: "host2@gmae.test",
    action: "failed",
    status: "5.1.2",
    diagnostic: "Host or domain name not found",
  }]);
  assert.equal(describeRecipientStatus(r.recipients[0]), "Host or domain name not found");
});

Deno.test("a delay notice with only the returned headers, several recipients and folded fields", () => {
  const raw = crlf(`From: MAILER-DAEMON@mx.example
To: ann@example.org
Subject: Delayed Mail (still being retried)
Content-Type: multipart/report;
 report-type="delivery-status";
 boundary="b=1"

--b=1
Content-Type: text/plain

Your message is delayed.
--b=1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example
Arrival-Date: Mon, 1 Jan 2024 00:00:00 +0000

Final-Recipient: RFC822; <Host@Game.Example>
Action: delayed (still trying)
Status: 4.4.1
Diagnostic-Code: smtp; connect to mx.game.example[192.0.2.1]:25:
  Connection timed out
Will-Retry-Until: Tue, 2 Jan 2024 00:00:00 +0000

Original-Recipient: rfc822;other@game.example
Action: failed
Status: 5.1.1

--b=1
Content-Type: text/rfc822-headers

From: ann@example.org
Message-ID:
 <abc@example.org>
Subject: mailmeet rendezvous

--b=1--
`);
  assert.ok(isDeliveryReport(raw));
  const r = parseDeliveryReport(raw)!;
  assert.equal(r.messageId, "abc@example.org");
  assert.deepEqual(r.recipients, [
    {
      recipient: "host@game.example",
      action: "delayed",
      status: "4.4.1",
      diagnostic: "connect to mx.game.example[192.0.2.1]:25: Connection timed out",
    },
    { recipient: "other@game.example", action: "failed", status: "5.1.1" },
  ]);
  // Without words of its own, the status code says what it means.
  assert.equal(describeRecipientStatus(r.recipients[1]), "no such mailbox (5.1.1)");
});

Deno.test("a base64 delivery-status part and the UTF-8 form (RFC 6533) are read too", () => {
  const status = btoa("Final-Recipient: rfc822; h@x.example\r\nAction: failed\r\nStatus: 5.2.2\r\n");
  const raw = crlf(`Content-Type: multipart/report; report-type=global-delivery-status; boundary=zz

--zz
Content-Type: message/global-delivery-status
Content-Transfer-Encoding: base64

${status}
--zz
Content-Type: message/global-headers

Message-ID: <m1@x.example>

--zz--
`);
  const r = parseDeliveryReport(raw)!;
  assert.equal(r.messageId, "m1@x.example");
  assert.deepEqual(r.recipients, [{ recipient: "h@x.example", action: "failed", status: "5.2.2" }]);
  assert.equal(describeRecipientStatus(r.recipients[0]), "the mailbox is full (5.2.2)");
});

Deno.test("anything else is not a delivery report: plain mail, other reports, prose bounces, broken ones", () => {
  for (
    const text of [
      "Subject: hello\n\nhi\n",
      "Content-Type: multipart/report; report-type=disposition-notification; boundary=a\n\n--a\n\n--a--\n",
      "Subject: Mail delivery failed\nContent-Type: text/plain\n\nThe following address failed: x@y\n",
      "Content-Type: multipart/report; report-type=delivery-status\n\nno boundary\n",
      "Content-Type: multipart/report; report-type=delivery-status; boundary=q\n\n--q\nContent-Type: text/plain\n\nonly prose\n--q--\n",
    ]
  ) {
    assert.equal(parseDeliveryReport(crlf(text)), undefined, text);
  }
  assert.equal(isDeliveryReport("Subject: x\r\n\r\n"), false);
});
