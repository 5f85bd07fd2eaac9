import assert from "node:assert/strict";
import { LineReader, streamSource } from "../../src/mail/line_reader.ts";
import { MailError } from "../../src/mail/errors.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function reader(chunks: string[], maxLine?: number) {
  return new LineReader(streamSource(ReadableStream.from(chunks.map(enc))), maxLine);
}

Deno.test("line reader joins a CRLF split across reads", async () => {
  const r = reader(["* OK hel", "lo\r", "\n* 2 EXI", "STS\r\n"]);
  assert.equal(await r.readLine(), "* OK hello");
  assert.equal(await r.readLine(), "* 2 EXISTS");
  assert.equal(await r.readLine(), null);
});

Deno.test("line reader reads exact byte counts across chunk edges", async () => {
  const r = reader(["ab", "cdef\r\n", "gh"]);
  assert.equal(new TextDecoder().decode(await r.readN(3)), "abc");
  assert.equal(await r.readLine(), "def");
  assert.equal(new TextDecoder().decode(await r.readN(2)), "gh");
  assert.equal((await r.readN(0)).length, 0);
});

Deno.test("line reader refuses a line over the cap", async () => {
  const r = reader(["x".repeat(100), "y".repeat(100), "\r\n"], 64);
  await assert.rejects(() => r.readLine(), (e: unknown) => e instanceof MailError && e.code === "protocol");
});

Deno.test("line reader refuses an over-long line that arrives in one chunk", async () => {
  const r = reader(["x".repeat(200) + "\r\nshort\r\n"], 64);
  await assert.rejects(() => r.readLine(), (e: unknown) => e instanceof MailError && e.code === "protocol");
});

Deno.test("line reader reports a connection closed mid-line or mid-count", async () => {
  await assert.rejects(
    () => reader(["half a line"]).readLine(),
    (e: unknown) => e instanceof MailError && e.code === "closed",
  );
  await assert.rejects(
    () => reader(["abc"]).readN(10),
    (e: unknown) => e instanceof MailError && e.code === "closed",
  );
});
