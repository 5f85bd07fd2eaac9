import assert from "node:assert/strict";
import { TextConnection } from "../../src/mail/connection.ts";
import { MailError } from "../../src/mail/errors.ts";
import { FakeTimers } from "../helpers/fake_timers.ts";

/** Enough of a Deno.Conn for TextConnection.open: it only counts close(). */
function fakeConn() {
  const conn = {
    closes: 0,
    close() {
      conn.closes++;
    },
    read: () => Promise.resolve(null),
    write: (p: Uint8Array) => Promise.resolve(p.length),
  };
  return conn;
}

Deno.test("a mail connection that opens after its connect timeout is closed, and open() says it timed out", async () => {
  const timers = new FakeTimers();
  const late = Promise.withResolvers<Deno.Conn>();
  let signal: AbortSignal | undefined;
  const opening = TextConnection.open({
    host: "imap.example.test",
    port: 143,
    implicitTls: false,
    connectTimeoutMs: 15_000,
    timers,
    dial: (to) => {
      signal = to.signal;
      return late.promise;
    },
  });
  timers.fireAll();
  await assert.rejects(
    opening,
    (err) =>
      err instanceof MailError && err.code === "timeout" &&
      err.message === "Cannot connect to imap.example.test:143: no answer within 15 s.",
  );
  assert.equal(signal?.aborted, true, "the dial was told to give up");
  const conn = fakeConn();
  late.resolve(conn as unknown as Deno.Conn);
  await late.promise;
  await Promise.resolve();
  assert.equal(conn.closes, 1);
  assert.equal(timers.pending, 0);
});

Deno.test("a mail connection that opens in time is kept open and its timer cleared", async () => {
  const timers = new FakeTimers();
  const conn = fakeConn();
  const text = await TextConnection.open({
    host: "imap.example.test",
    port: 143,
    implicitTls: false,
    timers,
    dial: () => Promise.resolve(conn as unknown as Deno.Conn),
  });
  assert.equal(conn.closes, 0);
  assert.equal(timers.pending, 0);
  text.close();
  assert.equal(conn.closes, 1);
});

Deno.test("a TLS connection whose handshake times out is closed", async () => {
  const timers = new FakeTimers();
  const started = Promise.withResolvers<void>();
  const conn = {
    ...fakeConn(),
    handshake: () => {
      started.resolve();
      return new Promise(() => {});
    },
  };
  let closes = 0;
  conn.close = () => void closes++;
  const opening = TextConnection.open({
    host: "imap.example.test",
    port: 993,
    implicitTls: true,
    timers,
    dial: () => Promise.resolve(conn as unknown as Deno.Conn),
  });
  await started.promise;
  timers.fireAll();
  await assert.rejects(opening, (err) => err instanceof MailError && err.code === "timeout");
  assert.equal(closes, 1);
});
