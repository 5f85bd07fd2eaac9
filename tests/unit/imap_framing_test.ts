import assert from "node:assert/strict";
import { MailError } from "../../src/mail/errors.ts";
import { LineReader, streamSource } from "../../src/mail/line_reader.ts";
import { type FrameLimits, literalAnnouncement, ResponseReader } from "../../src/mail/imap/framing.ts";
import {
  bytesValue,
  capabilityNames,
  type DataResponse,
  fetchAttributes,
  type ImapResponse,
  type ImapValue,
  numberValue,
  parseResponse,
  textValue,
} from "../../src/mail/imap/parser.ts";
import { encodeMailboxName, encodeResponseString, stringArg, uidSet } from "../../src/mail/imap/encode.ts";
import { saslPlain } from "../../src/mail/sasl.ts";
import { parseInternalDate } from "../../src/mail/imap/commands.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

/** Reads every response from the chunks (the way the client does), parsed. */
async function responses(
  chunks: readonly (string | Uint8Array)[],
  limits: Partial<FrameLimits> = {},
  maxLine?: number,
): Promise<ImapResponse[]> {
  const bytes = chunks.map((c) => typeof c === "string" ? enc(c) : c);
  const reader = new ResponseReader(
    new LineReader(streamSource(ReadableStream.from(bytes)), maxLine),
    limits,
  );
  const out: ImapResponse[] = [];
  for (;;) {
    const raw = await reader.read();
    if (raw === null) return out;
    out.push(parseResponse(raw));
  }
}

function isCode(code: string) {
  return (e: unknown) => e instanceof MailError && e.code === code;
}

function fetchOf(r: ImapResponse | undefined): Map<string, ImapValue> {
  assert.ok(r && r.kind === "data" && r.name === "FETCH", `expected FETCH, got ${JSON.stringify(r)}`);
  return fetchAttributes(r as DataResponse);
}

/** A session's worth of tricky responses: literals that look like responses, escapes, nesting. */
const SCRIPT = [
  "* OK [CAPABILITY IMAP4rev1 SASL-IR IDLE UIDPLUS AUTH=PLAIN] Dovecot ready.\r\n",
  "* 3 EXISTS\r\n",
  "* 1 FETCH (UID 7 RFC822.SIZE 42 BODY[HEADER.FIELDS (SUBJECT DATE)] {0}\r\n)\r\n",
  "* 2 FETCH (UID 8 BODY[] {32}\r\n* 1 EXISTS\r\nA1 NO BAD\r\nA1 OK x\r\n FLAGS (\\Seen))\r\n",
  "* 4 EXPUNGE\r\n",
  "A1 OK [READ-WRITE] SELECT completed\r\n",
  "* 3 FETCH (UID 9 BODY[HEADER] {5}\r\nab\r\nc BODY[TEXT] {3}\r\nxyz)\r\n",
  '* 4 FETCH (UID 10 ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "say \\"hi\\" \\\\ ok" NIL NIL ((NIL NIL "a" "b.test")) NIL NIL NIL NIL "<id>") FLAGS ())\r\n',
  '* LIST (\\HasNoChildren) "/" INBOX\r\n',
  "+ idling\r\n",
  "* OK Still here\r\n",
  "* SEARCH 1 2 3\r\n",
  "* 5 FETCH (UID 11 BINARY[] ~{4}\r\n\x00\x01\r\n)\r\n",
  "A2 NO [UNAVAILABLE] try later\r\n",
].join("");

Deno.test("framing parses a session of tricky responses into the expected AST", async () => {
  const rs = await responses([SCRIPT]);
  assert.equal(rs.length, 14);
  const [greeting, exists, f1, f2, expunge, ok1, f3, f4, list, cont, still, search, f5, no2] = rs;
  assert.deepEqual(greeting, {
    kind: "status",
    tag: null,
    status: "OK",
    code: { name: "CAPABILITY", args: "IMAP4rev1 SASL-IR IDLE UIDPLUS AUTH=PLAIN" },
    text: "Dovecot ready.",
  });
  assert.ok(greeting.kind === "status" && greeting.code);
  assert.ok(capabilityNames(greeting.code).has("AUTH=PLAIN"));
  assert.deepEqual(exists, { kind: "data", name: "EXISTS", number: 3, values: [] });
  const a1 = fetchOf(f1);
  assert.equal(numberValue(a1.get("UID")), 7);
  assert.equal(numberValue(a1.get("RFC822.SIZE")), 42);
  assert.equal(bytesValue(a1.get("BODY[HEADER.FIELDS (SUBJECT DATE)]"))?.length, 0);
  const a2 = fetchOf(f2);
  assert.equal(dec(bytesValue(a2.get("BODY[]"))), "* 1 EXISTS\r\nA1 NO BAD\r\nA1 OK x\r\n");
  assert.deepEqual(a2.get("FLAGS"), { type: "list", items: [{ type: "atom", value: "\\Seen" }] });
  assert.deepEqual(expunge, { kind: "data", name: "EXPUNGE", number: 4, values: [] });
  assert.deepEqual(ok1, {
    kind: "status",
    tag: "A1",
    status: "OK",
    code: { name: "READ-WRITE", args: "" },
    text: "SELECT completed",
  });
  const a3 = fetchOf(f3);
  assert.equal(dec(bytesValue(a3.get("BODY[HEADER]"))), "ab\r\nc");
  assert.equal(dec(bytesValue(a3.get("BODY[TEXT]"))), "xyz");
  const env = fetchOf(f4).get("ENVELOPE");
  assert.ok(env && env.type === "list");
  assert.equal(textValue(env.items[1]), 'say "hi" \\ ok');
  assert.equal(env.items[2], null);
  const from = env.items[4];
  assert.ok(from && from.type === "list" && from.items[0]?.type === "list");
  assert.equal(textValue(from.items[0].items[3]), "b.test");
  assert.deepEqual(fetchOf(f4).get("FLAGS"), { type: "list", items: [] });
  assert.ok(list.kind === "data" && list.name === "LIST" && list.values.length === 3);
  assert.deepEqual(cont, { kind: "continue", text: "idling" });
  assert.deepEqual(still, { kind: "status", tag: null, status: "OK", text: "Still here" });
  assert.ok(search.kind === "data" && search.values.map(numberValue).join() === "1,2,3");
  assert.deepEqual([...(bytesValue(fetchOf(f5).get("BINARY[]")) ?? [])], [0, 1, 13, 10]);
  assert.ok(
    no2.kind === "status" && no2.tag === "A2" && no2.status === "NO" && no2.code?.name === "UNAVAILABLE",
  );
});

Deno.test("framing gives the same responses whatever the read boundaries (every split point, and byte by byte)", async () => {
  const bytes = enc(SCRIPT);
  const whole = await responses([bytes]);
  for (let i = 1; i < bytes.length; i++) {
    assert.deepEqual(await responses([bytes.slice(0, i), bytes.slice(i)]), whole, `split at ${i}`);
  }
  assert.deepEqual(await responses([...bytes].map((b) => Uint8Array.of(b))), whole);
});

Deno.test("framing joins a CRLF split between \\r and \\n, inside a literal and inside a quoted string", async () => {
  const rs = await responses([
    "* OK [UIDVALIDITY 17] x\r",
    "\n* 1 FETCH (BODY[] {6}\r\nab\r",
    '\ncd INTERNALDATE "17-Jul-1996 02:',
    '44:25 -0700")\r\nA3 OK',
    " done\r\n",
  ]);
  assert.equal(rs.length, 3);
  assert.ok(rs[0].kind === "status" && rs[0].code?.args === "17");
  const a = fetchOf(rs[1]);
  assert.equal(dec(bytesValue(a.get("BODY[]"))), "ab\r\ncd");
  assert.equal(textValue(a.get("INTERNALDATE")), "17-Jul-1996 02:44:25 -0700");
  assert.ok(rs[2].kind === "status" && rs[2].tag === "A3" && rs[2].text === "done");
});

Deno.test("literal announcements: {n}, {0}, {n+} and ~{n} at the end of a line only", () => {
  assert.equal(literalAnnouncement(enc("* 1 FETCH (BODY[] {12}")), 12);
  assert.equal(literalAnnouncement(enc("x {0}")), 0);
  assert.equal(literalAnnouncement(enc("A1 LOGIN {5+}")), 5);
  assert.equal(literalAnnouncement(enc("* 1 FETCH (BINARY[] ~{3}")), 3);
  assert.equal(literalAnnouncement(enc("{}")), undefined);
  assert.equal(literalAnnouncement(enc("A1 OK {5} done")), undefined);
  assert.equal(literalAnnouncement(enc("A1 OK 5}")), undefined);
  assert.equal(literalAnnouncement(enc("x {1234567890123}")), Number.POSITIVE_INFINITY);
});

Deno.test("untagged responses between and among tagged ones keep their order", async () => {
  const rs = await responses([
    "* 2 EXISTS\r\nA1 OK a\r\n* 1 RECENT\r\n* 3 EXISTS\r\nA2 OK b\r\n* OK Still here\r\nA3 BAD c\r\n",
  ]);
  assert.deepEqual(
    rs.map((r) =>
      r.kind === "status"
        ? `${r.tag ?? "*"} ${r.status}`
        : r.kind === "data"
        ? `* ${r.number} ${r.name}`
        : "+"
    ),
    ["* 2 EXISTS", "A1 OK", "* 1 RECENT", "* 3 EXISTS", "A2 OK", "* OK", "A3 BAD"],
  );
});

Deno.test("framing caps the line length (protocol) and the literal and response sizes (too_large)", async () => {
  await assert.rejects(
    () => responses(["* OK " + "x".repeat(200) + "\r\n"], { maxLine: 100 }),
    isCode("protocol"),
  );
  await assert.rejects(
    () => responses(["* OK " + "x".repeat(200), "y".repeat(200)], {}, 64),
    isCode("protocol"),
  );
  await assert.rejects(
    () => responses(["* 1 FETCH (BODY[] {1000}\r\n", "z".repeat(1000), ")\r\n"], { maxLiteral: 999 }),
    isCode("too_large"),
  );
  await assert.rejects(
    () => responses(["* 1 FETCH (BODY[] {99999999999999}\r\n"]),
    isCode("too_large"),
  );
  const many = "* 1 FETCH (X {3}\r\nabc".repeat(1) + " Y {3}\r\nabc".repeat(50) + ")\r\n";
  await assert.rejects(() => responses([many], { maxResponse: 200 }), isCode("too_large"));
});

Deno.test("a connection that ends inside a response or a literal is 'closed'; between responses it is a clean end", async () => {
  await assert.rejects(() => responses(["* 1 FETCH (BODY[] {10}\r\nabc"]), isCode("closed"));
  await assert.rejects(() => responses(["* 1 FETCH (BODY[] {3}\r\nabc"]), isCode("closed"));
  await assert.rejects(() => responses(["* OK no line end"]), isCode("closed"));
  assert.deepEqual(await responses(["* OK fine\r\n"]), [{
    kind: "status",
    tag: null,
    status: "OK",
    text: "fine",
  }]);
  assert.deepEqual(await responses([]), []);
});

Deno.test("malformed responses are MailError 'protocol'", async () => {
  for (
    const bad of [
      '* 1 FETCH (BODY[] "unterminated)\r\n',
      "* 1 FETCH (UID 1 FLAGS (\\Seen)\r\n",
      "* 1 FETCH UID 1\r\n",
      "* 1 FETCH (BODY[] {3} UID 1)\r\n",
      "* 1 WHATEVER\r\n",
      "A1 MAYBE fine\r\n",
      "A1\r\n",
      "\r\n",
      "* SEARCH 1 (2\r\n",
      "* 1 FETCH (BODY[HEADER " + "(".repeat(100) + ")\r\n",
      "* 1 FETCH (" + "(".repeat(100) + ")".repeat(100) + ")\r\n",
    ]
  ) {
    await assert.rejects(() => responses([bad]), isCode("protocol"), bad);
  }
});

Deno.test("unknown untagged data with odd syntax is kept as a name without values rather than failing", async () => {
  const [r] = await responses(['* XFOO ("a) b\r\n']);
  assert.deepEqual(r, { kind: "data", name: "XFOO", values: [] });
});

Deno.test("status responses: lone '* OK', codes with arguments, BYE, PREAUTH, continuation without text", async () => {
  const rs = await responses([
    "* OK\r\n* OK [UIDNEXT 4392] Predicted next UID\r\n* BYE Server shutting down\r\n* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n+\r\n+ \r\n",
  ]);
  assert.deepEqual(rs[0], { kind: "status", tag: null, status: "OK", text: "" });
  assert.deepEqual(rs[1], {
    kind: "status",
    tag: null,
    status: "OK",
    code: { name: "UIDNEXT", args: "4392" },
    text: "Predicted next UID",
  });
  assert.ok(rs[2].kind === "status" && rs[2].status === "BYE");
  assert.ok(rs[3].kind === "status" && rs[3].status === "PREAUTH" && rs[3].code?.name === "CAPABILITY");
  assert.deepEqual(rs[4], { kind: "continue", text: "" });
  assert.deepEqual(rs[5], { kind: "continue", text: "" });
});

Deno.test('encoder: quoted strings escape \\ and ", and anything unquotable becomes a literal', () => {
  assert.equal(stringArg('a "b" \\c'), '"a \\"b\\" \\\\c"');
  assert.deepEqual(stringArg("grüß"), { literal: enc("grüß") });
  assert.deepEqual(stringArg("line\r\nA2 LOGOUT"), { literal: enc("line\r\nA2 LOGOUT") });
  assert.equal(dec(encodeResponseString(enc("x"))), '"x"');
  assert.equal(dec(encodeResponseString(enc("é"))), "{2}\r\né");
});

Deno.test("encoder: UID sets collapse runs and mailbox names use modified UTF-7 (RFC 3501 §5.1.3)", () => {
  assert.equal(uidSet([5, 1, 2, 3, 9, 10, 3]), "1:3,5,9:10");
  assert.equal(uidSet([42]), "42");
  assert.throws(() => uidSet([]), isCode("protocol"));
  assert.equal(encodeMailboxName("INBOX"), "INBOX");
  assert.equal(encodeMailboxName("Tom & Jerry"), "Tom &- Jerry");
  assert.equal(encodeMailboxName("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
  assert.equal(encodeMailboxName("Entwürfe"), "Entw&APw-rfe");
});

Deno.test("SASL PLAIN carries user and password NUL-separated in base64 (RFC 4616)", () => {
  assert.equal(atob(saslPlain("bob@isp-b.test", "pässword")), "\0bob@isp-b.test\0p\xc3\xa4ssword");
});

Deno.test("INTERNALDATE parses with its zone and rejects garbage", () => {
  assert.equal(parseInternalDate("17-Jul-1996 02:44:25 -0700")?.toISOString(), "1996-07-17T09:44:25.000Z");
  assert.equal(parseInternalDate(" 7-Feb-2024 10:00:00 +0100")?.toISOString(), "2024-02-07T09:00:00.000Z");
  assert.equal(parseInternalDate("yesterday"), undefined);
  assert.equal(parseInternalDate("17-Foo-1996 02:44:25 -0700"), undefined);
});
