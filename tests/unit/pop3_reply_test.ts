import assert from "node:assert/strict";
import { splitAt } from "../helpers/split_at.ts";
import fc from "fast-check";
import { MailError } from "../../src/mail/errors.ts";
import { LineReader, streamSource } from "../../src/mail/line_reader.ts";
import { parseStatus, readMultiline, readStatus, unstuffLine } from "../../src/mail/pop3/reply.ts";
import { parseCapa, parseList, parseUidl } from "../../src/mail/pop3/commands.ts";
import { saslPlain } from "../../src/mail/sasl.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function reader(chunks: (string | Uint8Array)[], maxLine?: number): LineReader {
  return new LineReader(
    streamSource(ReadableStream.from(chunks.map((c) => typeof c === "string" ? enc(c) : c))),
    maxLine,
  );
}

/** Test encoder: RFC 1939 §3 byte-stuffing of a body made of CRLF lines, plus the terminator. */
function dotStuff(body: Uint8Array): Uint8Array {
  const out: number[] = [];
  let atLineStart = true;
  for (const b of body) {
    if (atLineStart && b === 0x2e) out.push(0x2e);
    out.push(b);
    atLineStart = b === 0x0a;
  }
  out.push(0x2e, 0x0d, 0x0a);
  return new Uint8Array(out);
}

async function readReply(chunks: (string | Uint8Array)[], maxBytes = 1 << 20) {
  const r = reader(chunks);
  const status = await readStatus(r);
  const body = await readMultiline(r, { maxBytes });
  return { status, body: dec(body.data), size: body.size, after: await r.readLine() };
}

const RETR_REPLY =
  "+OK 58 octets\r\nSubject: x\r\n\r\n..hidden dot\r\n..\r\nplain\r\n...\r\n.\r\n+OK next\r\n";

Deno.test("pop3 reply reader gives the same result however the bytes are split", async () => {
  const whole = await readReply([RETR_REPLY]);
  assert.equal(whole.status.kind, "+OK");
  assert.equal(whole.body, "Subject: x\r\n\r\n.hidden dot\r\n.\r\nplain\r\n..\r\n");
  assert.equal(whole.after, "+OK next");
  const awkward = [
    // between \r and \n
    [
      "+OK 58 octets\r",
      "\nSubject: x\r",
      "\n\r",
      "\n..hidden dot\r\n..\r\nplain\r\n...\r\n.\r\n+OK next\r\n",
    ],
    // inside the terminating .\r\n
    ["+OK 58 octets\r\nSubject: x\r\n\r\n..hidden dot\r\n..\r\nplain\r\n...\r\n.", "\r", "\n+OK next\r\n"],
    // a line that is just ".." split between its dots
    ["+OK 58 octets\r\nSubject: x\r\n\r\n..hidden dot\r\n.", ".\r\nplain\r\n...\r\n.\r\n+OK next\r\n"],
    // one byte at a time
    [...RETR_REPLY],
  ];
  for (const chunks of awkward) assert.deepEqual(await readReply(chunks), whole);
});

Deno.test("pop3 reply reader removes exactly one stuffed dot and stops at a lone dot", () => {
  assert.equal(unstuffLine(enc(".")), null);
  assert.equal(dec(unstuffLine(enc(".."))!), ".");
  assert.equal(dec(unstuffLine(enc("...x"))!), "..x");
  assert.equal(dec(unstuffLine(enc("a.b"))!), "a.b");
  assert.equal(dec(unstuffLine(enc(""))!), "");
  // ". " is not the terminator: only a line that is exactly "." ends the body.
  assert.equal(dec(unstuffLine(enc(". "))!), " ");
});

Deno.test("pop3 status lines: +OK, -ERR with RFC 2449 codes, SASL continuation, anything else refused", () => {
  assert.deepEqual(parseStatus("+OK"), { kind: "+OK", text: "", line: "+OK" });
  assert.equal(parseStatus("+OK 2 messages").text, "2 messages");
  const err = parseStatus("-ERR [AUTH] Authentication failed.");
  assert.equal(err.kind, "-ERR");
  assert.equal(err.code, "AUTH");
  assert.equal(err.text, "Authentication failed.");
  assert.equal(parseStatus("-ERR [SYS/TEMP] try later").code, "SYS/TEMP");
  assert.equal(parseStatus("+ ").kind, "+");
  for (const bad of ["+ok", "OK", "-ERROR", "", "* OK imap"]) {
    assert.throws(() => parseStatus(bad), (e: unknown) => e instanceof MailError && e.code === "protocol");
  }
});

Deno.test("pop3 reply reader caps a multi-line body and reports a body cut short", async () => {
  const big = `+OK\r\n${"x".repeat(50)}\r\n${"y".repeat(50)}\r\n.\r\n`;
  const r = reader([big]);
  await readStatus(r);
  await assert.rejects(
    () => readMultiline(r, { maxBytes: 80, what: "message 7" }),
    (e: unknown) => e instanceof MailError && e.code === "too_large" && /Message 7/.test(e.message),
  );
  const kept = reader([big]);
  await readStatus(kept);
  const part = await readMultiline(kept, { maxBytes: 1000, keepBytes: 10 });
  assert.equal(dec(part.data), "xxxxxxxxxx");
  assert.equal(part.size, 104);
  const cut = reader(["+OK\r\nline\r\n.."]);
  await readStatus(cut);
  await assert.rejects(
    () => readMultiline(cut, { maxBytes: 1000 }),
    (e: unknown) => e instanceof MailError && e.code === "closed",
  );
  await assert.rejects(
    () => readStatus(reader([])),
    (e: unknown) => e instanceof MailError && e.code === "closed",
  );
});

Deno.test("pop3 listings: CAPA, UIDL and LIST parse, malformed lines are protocol errors", () => {
  const caps = parseCapa(["TOP", "UIDL", "RESP-CODES", "STLS", "SASL PLAIN login", "USER", "PIPELINING"]);
  assert.deepEqual([caps.stls, caps.user, caps.top, caps.uidl], [true, true, true, true]);
  assert.deepEqual([...caps.sasl], ["PLAIN", "LOGIN"]);
  assert.deepEqual([...parseUidl(["1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR:00WBw1Ph7x7"])], [
    [1, "whqtswO00WBw418f9t5JxYwZ"],
    [2, "QhdPYR:00WBw1Ph7x7"],
  ]);
  assert.deepEqual([...parseList(["1 120", "2 200"])], [[1, 120], [2, 200]]);
  for (
    const [fn, line] of [[parseUidl, "1 has space"], [parseUidl, "x y"], [parseList, "1"], [
      parseList,
      "a 1",
    ]] as const
  ) {
    assert.throws(() => fn([line]), (e: unknown) => e instanceof MailError && e.code === "protocol");
  }
  assert.equal(atob(saslPlain("bob@isp-b.test", "pässword")), "\0bob@isp-b.test\0p\xc3\xa4ssword");
});

/** Line contents as bytes (anything but LF), often starting with "." or being "." alone. */
const line = fc.oneof(
  fc.constantFrom(".", "..", "...", "", ". ", ".\r", "\r", "From x").map(enc),
  fc.string({ maxLength: 40 }).map((s) => enc(s.replace(/[\r\n]/g, ""))),
  fc.string({ maxLength: 40 }).map((s) => enc("." + s.replace(/[\r\n]/g, ""))),
  fc.uint8Array({ maxLength: 40 }).map((b) => b.filter((x) => x !== 0x0a)),
);

Deno.test("pop3 property: any body of CRLF lines survives dot-stuffing and arbitrary splits byte for byte", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(line, { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      async (lines, cuts) => {
        const body = new Uint8Array(lines.flatMap((l) => [...l, 0x0d, 0x0a]));
        const wire = new Uint8Array([...enc("+OK\r\n"), ...dotStuff(body)]);
        const r = reader(splitAt(wire, cuts));
        assert.equal((await readStatus(r)).kind, "+OK");
        const got = await readMultiline(r, { maxBytes: 1 << 20 });
        assert.deepEqual(got.data, body);
        assert.equal(got.size, body.length);
        assert.equal(await r.readLine(), null);
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("pop3 property: arbitrary bytes only ever produce a value or a MailError, and terminate", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.constantFrom("+OK", "-ERR", ".", "..", "\r", "\n", "\r\n", "x", "+ ", "[AUTH]"), {
          maxLength: 40,
        })
          .map((parts) => enc(parts.join(""))),
      ),
      fc.array(fc.nat(), { maxLength: 8 }),
      async (bytes, cuts) => {
        const r = reader(splitAt(bytes, cuts), 64);
        try {
          for (let i = 0; i < 100; i++) {
            const st = await readStatus(r);
            if (st.kind === "+OK") await readMultiline(r, { maxBytes: 128 });
          }
        } catch (err) {
          if (!(err instanceof MailError)) throw err;
        }
      },
    ),
    { numRuns: 500 },
  );
});
