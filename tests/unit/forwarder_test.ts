/**
 * The checks every mail a host acts on passes (roles/screen.ts), and the representative host
 * (roles/forwarder.ts, 【0062】) with a fake outbox, a real SQLite table and an injected clock.
 */
import assert from "node:assert/strict";
import type { OutgoingMail, Sender, SentInfo } from "../../src/mail/smtp.ts";
import type { ParsedMail } from "../../src/mail/parse.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { type Message, reachAt, type Request } from "../../src/protocol/messages.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import { Forwarder, WORKER_BACKOFF_MS } from "../../src/roles/forwarder.ts";
import type { InboundMail } from "../../src/roles/inbox.ts";
import { screen } from "../../src/roles/screen.ts";
import { DEFAULT_POLICY } from "../../src/table/policy.ts";
import { PeerTable } from "../../src/table/table.ts";

const NOW = Date.UTC(2026, 10, 27, 12);
const H = 3600_000;
const SETTINGS = { maxAgeMs: 12 * H, skewMs: 10 * 60_000 };
let counter = 0;
const nonce = () => new Uint8Array(16).fill(++counter & 0xff).map((b, i) => (i === 0 ? counter >> 8 : b));

function request(user: string, time = NOW): Request {
  return {
    kind: "request",
    user,
    host: "192.0.2.1",
    port: 5000,
    ...reachAt("192.0.2.1", 5000),
    quiet: false,
    probe: false,
    session: nonce(),
    linkKey: new Uint8Array(32).fill(2),
    time,
    nonce: nonce(),
    replyTo: `${user}@peers.test`,
  };
}

function mail(message: Message | ProtocolError, opts: { id?: string; date?: Date } = {}): InboundMail {
  const m: ParsedMail = {
    subject: "m",
    date: opts.date ?? new Date(NOW),
    recipients: ["rep@host.test"],
    text: "T",
  };
  return { id: opts.id ?? `id-${++counter}`, mail: m, message, wokeAt: 0 };
}

async function withTable(fn: (t: PeerTable) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir();
  const table = new PeerTable(`${dir}/t.db`, DEFAULT_POLICY);
  try {
    await fn(table);
  } finally {
    table.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("screen: unreadable, too old by Date or by seal, from the future, and replies are refused", async () => {
  await withTable((t) => {
    const refused = (m: InboundMail) => {
      const s = screen(m, t, SETTINGS, NOW);
      assert.equal(s.ok, false);
      return s.ok ? "" : s.reason;
    };
    assert.match(
      refused(mail(new ProtocolError("The mail holds no mailmeet block.", "malformed"))),
      /no mailmeet block/,
    );
    assert.match(refused(mail(request("a"), { date: new Date(NOW - 13 * H) })), /older than --max-age/);
    assert.match(refused(mail(request("b", NOW - 13 * H))), /sealed longer ago/);
    assert.match(refused(mail(request("c", NOW + H))), /dated in the future/);
    assert.match(refused(mail({ kind: "reply", session: nonce(), time: NOW, peers: [] })), /reply/);
  });
});

Deno.test("screen: a nonce seen in another mail is a replay; in the same mail it is a retry, then answered once settled", async () => {
  await withTable((t) => {
    const req = request("pat");
    const first = screen(mail(req, { id: "m1" }), t, SETTINGS, NOW);
    assert.ok(first.ok && first.seen === "new");
    const again = screen(mail(req, { id: "m1" }), t, SETTINGS, NOW);
    assert.ok(again.ok && again.seen === "retry", "the same mail after a crash");
    const replay = screen(mail(req, { id: "m2" }), t, SETTINGS, NOW);
    assert.ok(!replay.ok && /replayed/.test(replay.reason));
    t.settle(first.ok ? first.nonce : "", NOW, () => {});
    const done = screen(mail(req, { id: "m1" }), t, SETTINGS, NOW);
    assert.ok(done.ok && done.seen === "answered");
  });
});

class Outbox implements Sender {
  readonly label = "fake";
  sent: OutgoingMail[] = [];
  refuse = new Set<string>();
  send(m: OutgoingMail): Promise<SentInfo> {
    if (m.to.some((a) => this.refuse.has(a))) return Promise.reject(new Error("550 no such user"));
    this.sent.push(m);
    return Promise.resolve({ messageId: `<${this.sent.length}@fake>`, response: "250 ok" });
  }
  close() {
    return Promise.resolve();
  }
  [Symbol.asyncDispose]() {
    return this.close();
  }
}

function forwarder(t: PeerTable, workers: string[], clock: { now: number }) {
  const outbox = new Outbox();
  const events: NodeEvent[] = [];
  const f = new Forwarder(
    { address: "rep@host.test", marker: "m", workers, ...SETTINGS },
    { sender: outbox, table: t, events: (e) => events.push(e), clock: () => clock.now },
  );
  return { f, outbox, events };
}

Deno.test("a representative passes requests on unchanged, in turn, and failure notices to every worker", async () => {
  await withTable(async (t) => {
    const clock = { now: NOW };
    const { f, outbox } = forwarder(t, ["w1@h.test", "w2@h.test", "w3@h.test"], clock);
    for (let i = 0; i < 6; i++) assert.equal(await f.handle(mail(request(`u${i}`))), "delete");
    assert.deepEqual(f.shares, { "w1@h.test": 2, "w2@h.test": 2, "w3@h.test": 2 });
    assert.ok(outbox.sent.every((m) => m.text === "T" && m.subject === "m"), "the same sealed block");
    outbox.sent = [];
    const failure: Message = { kind: "failure", user: "u0", target: "u1", time: NOW, nonce: nonce() };
    await f.handle(mail(failure));
    assert.deepEqual(outbox.sent.map((m) => m.to[0]), ["w1@h.test", "w2@h.test", "w3@h.test"]);
  });
});

Deno.test("a representative rests a worker that refused mail, doubling, and never passes a replay on", async () => {
  await withTable(async (t) => {
    const clock = { now: NOW };
    const { f, outbox } = forwarder(t, ["bad@h.test", "good@h.test"], clock);
    outbox.refuse.add("bad@h.test");
    await f.handle(mail(request("a")));
    await f.handle(mail(request("b")));
    assert.deepEqual(
      outbox.sent.map((m) => m.to[0]),
      ["good@h.test", "good@h.test"],
      "bad skipped while resting",
    );
    // Rest over: tried again, refused again, rests twice as long.
    clock.now += WORKER_BACKOFF_MS + 1;
    outbox.sent = [];
    await f.handle(mail(request("c", clock.now)));
    assert.deepEqual(outbox.sent.map((m) => m.to[0]), ["good@h.test"]);
    clock.now += WORKER_BACKOFF_MS + 1;
    await f.handle(mail(request("d", clock.now)));
    assert.deepEqual(outbox.sent.map((m) => m.to[0]), ["good@h.test", "good@h.test"], "still resting (2×)");
    // A replay (the same request in another mail) is dropped, not passed on.
    const req = request("e", clock.now);
    await f.handle(mail(req, { id: "x1" }));
    const before = outbox.sent.length;
    assert.equal(await f.handle(mail(req, { id: "x2" })), "delete");
    assert.equal(outbox.sent.length, before);
  });
});

Deno.test("a representative whose workers all refuse keeps the request for a retry", async () => {
  await withTable(async (t) => {
    const clock = { now: NOW };
    const { f, outbox } = forwarder(t, ["bad@h.test"], clock);
    outbox.refuse.add("bad@h.test");
    await assert.rejects(() => f.handle(mail(request("a"))), /stays in the mailbox/);
  });
});
