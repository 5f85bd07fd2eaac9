import assert from "node:assert/strict";
import PostalMime from "postal-mime";
import { composePlain, rfc5322Date } from "../../src/mail/compose.ts";
import { composeMail } from "../../src/mail/smtp.ts";
import { parseMail } from "../../src/mail/parse.ts";
import { sealToText } from "../../src/protocol/envelope.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { request } from "../helpers/events.ts";

const key = networkKeyFromSecret(new Uint8Array(32).fill(4));

Deno.test("our sealed mail is composed without nodemailer, and reads back the same everywhere", async () => {
  const text = sealToText(key, request("bob", { address: "bob@isp-b.test" }));
  const date = new Date("2026-11-24T12:34:56Z");
  const plain = composePlain({
    from: "bob@isp-b.test",
    to: ["h@game.test", "k@isp-a.test"],
    subject: "mailmeet rendezvous",
    text,
    date,
  });
  assert.ok(plain);
  const raw = new TextDecoder().decode(plain.raw);
  assert.match(
    raw,
    /^From: bob@isp-b\.test\r\nTo: h@game\.test, k@isp-a\.test\r\nSubject: mailmeet rendezvous\r\n/,
  );
  assert.match(raw, /\r\nDate: Tue, 24 Nov 2026 12:34:56 \+0000\r\n/);
  assert.match(raw, new RegExp(`\\r\\nMessage-ID: ${plain.messageId.replace(/[.]/g, "\\.")}\\r\\n`));
  assert.ok(!/[^\r]\n/.test(raw), "every line ends in CRLF");
  const ours = parseMail(plain.raw);
  const theirs = await PostalMime.parse(plain.raw);
  assert.equal(ours.text, text);
  assert.equal(theirs.text, text.replace(/\r\n/g, "\n"));
  assert.equal(ours.date?.getTime(), date.getTime());
  assert.deepEqual(ours.recipients, ["h@game.test", "k@isp-a.test"]);
  assert.equal(
    (await composeMail({ from: "bob@isp-b.test", to: ["h@game.test"], subject: "s", text })).raw[0],
    70,
  );
});

Deno.test("anything but plain 7-bit mail goes to nodemailer", () => {
  const base = { from: "a@x.test", to: ["b@y.test"], subject: "s", text: "hello" };
  assert.ok(composePlain(base));
  assert.equal(composePlain({ ...base, subject: "ランデブー" }), undefined);
  assert.equal(composePlain({ ...base, text: "é" }), undefined);
  assert.equal(composePlain({ ...base, text: "x".repeat(999) }), undefined);
  assert.equal(composePlain({ ...base, subject: "a\r\nBcc: evil@x.test" }), undefined);
  assert.equal(composePlain({ ...base, to: ["Bob <b@y.test>"] }), undefined);
  assert.equal(composePlain({ ...base, text: "a\rb" }), undefined, "a bare CR");
  assert.equal(rfc5322Date(new Date("2026-01-05T03:04:05Z")), "Mon, 5 Jan 2026 03:04:05 +0000");
});

Deno.test("an address with a header special ( ) : or \\ is left to the general composer", () => {
  const base = { from: "a@x.test", to: ["b@y.test"], subject: "s", text: "t", date: new Date(0) };
  assert.ok(composePlain({ ...base, to: ["b+tag@y.test"] }), "a subaddress is plain");
  for (const odd of ["a(b)@x.test", "a:b@x.test", "a\\b@x.test"]) {
    assert.equal(composePlain({ ...base, from: odd }), undefined, odd);
    assert.equal(composePlain({ ...base, to: [odd] }), undefined, odd);
  }
});
