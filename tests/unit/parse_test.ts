import assert from "node:assert/strict";
import fc from "fast-check";
import PostalMime from "postal-mime";
import {
  addresses,
  MAX_FIELD_CHARS,
  MAX_MIME_DEPTH,
  MAX_MIME_PARTS,
  parseHeader,
  parseMail,
} from "../../src/mail/parse.ts";
import { composeMail } from "../../src/mail/smtp.ts";
import { nestedMail } from "../helpers/poison.ts";

const enc = (s: string) => new TextEncoder().encode(s.replace(/\r?\n/g, "\r\n"));

Deno.test("parseMail reads what nodemailer writes: subject, date, from, recipients, quoted-printable text", async () => {
  const text = "A long first line that nodemailer folds with soft breaks, because it is longer than " +
    "seventy-six characters.\r\n\r\n-----BEGIN MAILMEET MESSAGE-----\r\nAQIDBA==\r\n-----END MAILMEET MESSAGE-----\r\n";
  const { raw } = await composeMail({
    from: "Alice <Alice@ISP-A.test>",
    to: ["h@game.test", "other@isp-b.test"],
    subject: "mailmeet rendezvous",
    text,
    date: new Date("2026-11-24T12:00:00Z"),
  });
  const m = parseMail(raw);
  assert.equal(m.subject, "mailmeet rendezvous");
  assert.equal(m.date?.toISOString(), "2026-11-24T12:00:00.000Z");
  assert.equal(m.from, "alice@isp-a.test");
  assert.deepEqual(m.recipients, ["h@game.test", "other@isp-b.test"]);
  assert.equal(m.text, text.replace(/\r\n/g, "\n").replace(/\n/g, "\r\n"));
  assert.equal(m.problem, undefined);
  assert.match(m.messageId ?? "", /^<.+@isp-a\.test>$/);
});

Deno.test("parseMail agrees with postal-mime on well-formed mail (subject, addresses, text)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.string({ minLength: 1, maxLength: 60, unit: "grapheme" }),
      fc.string({ maxLength: 400, unit: "grapheme" }),
      async (subject, text) => {
        const { raw } = await composeMail({ from: "a@isp-a.test", to: ["h@game.test"], subject, text });
        const ours = parseMail(raw);
        const theirs = await PostalMime.parse(raw);
        assert.equal(ours.subject, theirs.subject ?? "");
        // postal-mime turns CRLF into LF; we keep the text as it came (the block reader skips line ends).
        assert.equal(ours.text.replace(/\r\n/g, "\n"), theirs.text ?? "");
        assert.deepEqual(ours.recipients, ["h@game.test"]);
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("parseMail finds the text/plain part of a multipart/alternative and a base64 body", () => {
  const raw = enc(
    `Subject: =?UTF-8?B?bWFpbG1lZXQ=?= =?UTF-8?Q?_rendezvous?=\r\n` +
      `To: "Doe, J" <j@x.test>, team: a@b.test, (comment) c@d.test;\r\n` +
      `Content-Type: multipart/alternative; boundary="=_b"\r\n\r\n` +
      `preamble\r\n--=_b\r\nContent-Type: text/html\r\n\r\n<p>no</p>\r\n` +
      `--=_b\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n` +
      `${btoa("yes: é".replace("é", "\xc3\xa9"))}\r\n--=_b--\r\nepilogue\r\n`,
  );
  const m = parseMail(raw);
  assert.equal(m.subject, "mailmeet rendezvous");
  assert.deepEqual(m.recipients, ["j@x.test", "a@b.test", "c@d.test"]);
  assert.equal(m.text, "yes: é");
});

Deno.test("addresses: display names, quotes, comments, groups", () => {
  assert.deepEqual(addresses(`"A, B" <A@X.test>, c@y.test (C), Group: d@z.test;, <e@w.test>`), [
    "a@x.test",
    "c@y.test",
    "d@z.test",
    "e@w.test",
  ]);
  assert.deepEqual(addresses("undisclosed-recipients:;"), []);
});

Deno.test("a mail nested 300 levels deep is set aside with a reason, quickly and without throwing", () => {
  const m = parseMail(nestedMail(300));
  assert.equal(m.subject, "mailmeet rendezvous");
  assert.equal(m.text, "");
  assert.match(m.problem ?? "", /nested deeper than 8 levels/);
  // Within the limit the text is found.
  assert.equal(parseMail(nestedMail(MAX_MIME_DEPTH)).text, "hello");
});

Deno.test("a 1,000-part multipart stops at the part limit", () => {
  let body = "";
  for (let i = 0; i < 1000; i++) body += `--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n`;
  const m = parseMail(enc(`Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${body}--b--\r\n`));
  assert.match(m.problem ?? "", new RegExp(`more than ${MAX_MIME_PARTS} MIME parts`));
});

Deno.test("oversized header fields are cut, a header without an end is a problem, the subject still reads", () => {
  const huge = "x".repeat(300_000);
  const m = parseMail(enc(`Subject: mailmeet rendezvous ${huge}\r\nX-Big: ${huge}\r\n\r\nbody\r\n`));
  assert.ok(m.subject.startsWith("mailmeet rendezvous "));
  assert.ok(m.subject.length <= MAX_FIELD_CHARS);
  assert.match(m.problem ?? "", /header does not end/);
  // Folded into thousands of continuation lines: cut too.
  const folded = parseHeader(enc(`Subject: mailmeet${"\r\n x".repeat(20_000)}\r\n\r\n`));
  assert.ok(folded.subject.startsWith("mailmeet") && folded.subject.length <= MAX_FIELD_CHARS);
});

Deno.test("parser bombs: base64 garbage, unclosed quotes and comments, bad charsets never throw", () => {
  const bombs = [
    `Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\n${"!@#$".repeat(50_000)}\r\n`,
    `Subject: s\r\nTo: "${"a".repeat(100_000)}\r\nFrom: (((((${"(".repeat(50_000)}\r\n\r\nx`,
    `Subject: =?x-nonsense?Q?=ZZ=?= =?utf-8?B?####?=\r\nContent-Type: text/plain; charset=nope\r\n\r\nx`,
    `Subject: s\r\nContent-Type: multipart/mixed; boundary="${"b".repeat(10_000)}"\r\n\r\n--b\r\n`,
    `Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${"--b\r\n".repeat(60_000)}`,
    "\r\n".repeat(100_000),
    "",
  ];
  for (const b of bombs) assert.equal(typeof parseMail(enc(b)).text, "string");
});

Deno.test("property: parseMail never throws on arbitrary bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
      parseMail(bytes);
      parseHeader(bytes);
    }),
    { numRuns: 500 },
  );
});
