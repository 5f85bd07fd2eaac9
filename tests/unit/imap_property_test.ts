import assert from "node:assert/strict";
import fc from "fast-check";
import { MailError } from "../../src/mail/errors.ts";
import { LineReader, streamSource } from "../../src/mail/line_reader.ts";
import { type FrameLimits, type RawResponse, ResponseReader } from "../../src/mail/imap/framing.ts";
import { bytesValue, fetchAttributes, type ImapResponse, parseResponse } from "../../src/mail/imap/parser.ts";
import { encodeResponseString, stringArg } from "../../src/mail/imap/encode.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Cuts `bytes` at the given offsets (taken modulo the length, any order, duplicates allowed). */
function cut(bytes: Uint8Array, at: readonly number[]): Uint8Array[] {
  const points = [...new Set(at.map((a) => bytes.length ? a % bytes.length : 0))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points.concat([bytes.length])) {
    if (p > prev) out.push(bytes.slice(prev, p));
    prev = p;
  }
  return out;
}

async function readAll(
  chunks: readonly Uint8Array[],
  parse: (raw: RawResponse) => ImapResponse = parseResponse,
  limits: Partial<FrameLimits> = {},
  maxLine?: number,
): Promise<ImapResponse[]> {
  const reader = new ResponseReader(
    new LineReader(streamSource(ReadableStream.from(chunks)), maxLine),
    limits,
  );
  const out: ImapResponse[] = [];
  for (;;) {
    const raw = await reader.read();
    if (raw === null) return out;
    out.push(parse(raw));
  }
}

/** The BODY[] value of a one-FETCH stream in which `wire` stands for the string. */
async function bodyThrough(wire: Uint8Array, splits: readonly number[]): Promise<Uint8Array | undefined> {
  const stream = concat([enc("* 1 FETCH (UID 5 BODY[] "), wire, enc(" FLAGS (\\Seen))\r\nA1 OK done\r\n")]);
  const rs = await readAll(cut(stream, splits));
  assert.equal(rs.length, 2);
  const [f, ok] = rs;
  assert.ok(ok.kind === "status" && ok.tag === "A1");
  assert.ok(f.kind === "data" && f.name === "FETCH");
  return bytesValue(fetchAttributes(f).get("BODY[]"));
}

const splits = fc.array(fc.nat(), { maxLength: 8 });

Deno.test("property: any bytes survive the server-side string encoder (quoted or literal) and the parser, however split", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), splits, async (bytes, at) => {
      assert.deepEqual(await bodyThrough(encodeResponseString(bytes), at), bytes);
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: any text, including quotes, backslashes and line breaks, round-trips through stringArg", async () => {
  const text = fc.oneof(
    fc.string({ unit: fc.constantFrom("a", " ", '"', "\\", "(", ")", "{", "}", "*", "\r", "\n", "é", "1") }),
    fc.string({ unit: "grapheme" }),
    fc.string(),
  );
  await fc.assert(
    fc.asyncProperty(text, splits, async (s, at) => {
      const arg = stringArg(s);
      const wire = typeof arg === "string"
        ? enc(arg)
        : concat([enc(`{${arg.literal.length}}\r\n`), arg.literal]);
      assert.equal(new TextDecoder().decode(await bodyThrough(wire, at)), s);
    }),
    { numRuns: 300 },
  );
});

const TRICKY =
  `* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n* 2 FETCH (UID 8 BODY[] {23}\r\n* 1 EXISTS\r\nA1 NO BAD\r\n FLAGS ("a\\"b" NIL ((x))))\r\nA1 OK done\r\n`;

Deno.test("property: random read boundaries never change the responses", async () => {
  const bytes = enc(TRICKY);
  const whole = await readAll([bytes]);
  assert.equal(whole.length, 3);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.nat({ max: bytes.length }), { maxLength: 20 }), async (at) => {
      assert.deepEqual(await readAll(cut(bytes, at)), whole);
    }),
    { numRuns: 300 },
  );
});

/* ---------- arbitrary input: only MailError, and always an end ---------- */

/** Pieces that steer random input into the interesting corners of the grammar. */
const piece = fc.oneof(
  fc.uint8Array({ maxLength: 12 }),
  fc.constantFrom(
    "* ",
    "A1 ",
    "+ ",
    "OK ",
    "NO ",
    "BYE ",
    "1 FETCH ",
    "SEARCH ",
    "EXISTS",
    "(",
    ")",
    "[",
    "]",
    '"',
    "\\",
    "{",
    "}",
    "{3}\r\n",
    "{0}\r\n",
    "~{2}\r\n",
    "{99999}\r\n",
    "{1+}\r\n",
    "NIL",
    " ",
    "\r\n",
    "\r",
    "\n",
    "BODY[HEADER.FIELDS (SUBJECT)]",
    "<0>",
    "42",
    // whole responses, so that random input also reaches the parser's deeper paths
    "* 1 FETCH (UID 1 BODY[] {3}\r\nabc FLAGS (\\Seen))\r\n",
    '* 2 FETCH (UID 2 ENVELOPE ("d" "s" NIL))\r\n',
    "* 3 EXISTS\r\n",
    "A1 OK [UIDVALIDITY 1] done\r\n",
  ).map(enc),
);
const garbage = fc.tuple(fc.array(piece, { maxLength: 40 }), splits).map(([ps, at]) => cut(concat(ps), at));

const TERMINATION_MS = 2_000;

/**
 * Reads `chunks` to the end with small caps. Resolves with the responses or the error thrown;
 * rejects if it takes longer than TERMINATION_MS (a hang).
 */
async function drain(
  chunks: readonly Uint8Array[],
  parse: (raw: RawResponse) => ImapResponse,
): Promise<{ error?: unknown }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("reader did not terminate")), TERMINATION_MS);
  });
  try {
    return await Promise.race([
      readAll(chunks, parse, { maxLiteral: 64, maxResponse: 512, maxLine: 256 }, 256).then(
        () => ({}),
        (error) => ({ error }),
      ),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The property: whatever the bytes, reading ends, and any failure is a typed MailError. */
function onlyMailErrors(parse: (raw: RawResponse) => ImapResponse) {
  return fc.asyncProperty(garbage, async (chunks) => {
    const { error } = await drain(chunks, parse);
    if (error !== undefined && !(error instanceof MailError)) throw error;
    if (error instanceof MailError) {
      assert.ok(["protocol", "too_large", "closed"].includes(error.code), error.code);
    }
  });
}

Deno.test("property: arbitrary byte sequences end in responses or a MailError, never another exception or a hang", async () => {
  await fc.assert(onlyMailErrors(parseResponse), { numRuns: 1000 });
});

Deno.test("the arbitrary-bytes property does fail for a parser that throws something other than MailError", async () => {
  const careless = (raw: RawResponse) => {
    const r = parseResponse(raw);
    if (r.kind === "data" && r.name === "FETCH") throw new TypeError("oops");
    return r;
  };
  const result = await fc.check(onlyMailErrors(careless), { numRuns: 2000 });
  assert.equal(result.failed, true);
});
