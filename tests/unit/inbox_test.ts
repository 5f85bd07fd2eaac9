/**
 * The inbox loop with an in-memory mailbox and a real host and table: poisoned mail set aside,
 * deletions as the pass goes (after durable()), no second answer after a crash, retries after a
 * handler failure, and mail server outages waited out until the deadline.
 */
import assert from "node:assert/strict";
import { MailError } from "../../src/mail/errors.ts";
import type { Mailbox, MessageInfo } from "../../src/mail/mailbox.ts";
import { parseHeader } from "../../src/mail/parse.ts";
import { Patience } from "../../src/mail/patience.ts";
import type { OutgoingMail, Sender, SentInfo } from "../../src/mail/smtp.ts";
import { composeMail, toMailError } from "../../src/mail/smtp.ts";
import { parseAccount } from "../../src/mail/account.ts";
import { openText, sealToText } from "../../src/protocol/envelope.ts";
import { type NetworkKey, networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import type { Reply } from "../../src/protocol/messages.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import { Host, type HostSettings, MIN_INTROS_OUTSIDE_ROUND, roundLimit } from "../../src/roles/host.ts";
import { type Disposition, type InboundMail, InboxReader, QUARANTINE_FOLDER } from "../../src/roles/inbox.ts";
import { DEFAULT_POLICY } from "../../src/table/policy.ts";
import { PeerTable } from "../../src/table/table.ts";
import { request } from "../helpers/events.ts";
import { hugeHeaderMail, nestedMail, partBombMail } from "../helpers/poison.ts";

const key = networkKeyFromSecret(new Uint8Array(32).fill(9));
const MARKER = "mailmeet rendezvous";
const HOST = "host@game.test";

/** A mailbox in memory that logs what is done to it. */
class MemBox implements Mailbox {
  readonly label = "mem";
  mails = new Map<string, Uint8Array>();
  marked = new Set<string>();
  quarantined: string[] = [];
  log: string[] = [];
  /** list() fails with a retriable error this many more times. */
  failLists = 0;
  /** commit() throws this (a crash before the deletions were made permanent). */
  commitFails?: Error;
  /** fetch() refuses these as too large. */
  tooLarge = new Set<string>();
  /** These are bounces (listReports), not marker mail. */
  reportIds = new Set<string>();
  fetched: string[] = [];
  #next = 0;
  #poke?: () => void;

  constructor(readonly deleteBatch: number) {}

  add(raw: Uint8Array): string {
    const id = `m${++this.#next}`;
    this.mails.set(id, raw);
    this.#poke?.();
    return id;
  }
  list(marker: string): Promise<MessageInfo[]> {
    if (this.failLists > 0) {
      this.failLists--;
      return Promise.reject(new MailError("Cannot connect to mem: refused.", "connect"));
    }
    const out: MessageInfo[] = [];
    for (const [id, raw] of this.mails) {
      const h = parseHeader(raw);
      if (h.subject.toLowerCase().includes(marker.toLowerCase())) {
        out.push({ id, subject: h.subject, size: raw.length });
      }
    }
    return Promise.resolve(out);
  }
  fetch(id: string): Promise<Uint8Array> {
    this.fetched.push(id);
    if (this.tooLarge.has(id)) return Promise.reject(new MailError(`${id} is too large.`, "too_large"));
    const raw = this.mails.get(id);
    return raw ? Promise.resolve(raw) : Promise.reject(new MailError(`${id} gone`, "not_found"));
  }
  delete(ids: readonly string[]): Promise<void> {
    this.log.push(`delete ${ids.length}`);
    for (const id of ids) this.marked.add(id);
    return Promise.resolve();
  }
  commit(): Promise<void> {
    if (this.commitFails) return Promise.reject(this.commitFails);
    this.log.push("commit");
    for (const id of this.marked) this.mails.delete(id);
    this.marked.clear();
    return Promise.resolve();
  }
  listReports(): Promise<MessageInfo[]> {
    return Promise.resolve(
      [...this.reportIds].filter((id) => this.mails.has(id)).map((id) => ({ id, subject: "", size: 0 })),
    );
  }
  /** A mailbox with folders sets mail aside; undefined: one without (POP3, maildir) deletes it instead. */
  quarantine?: (ids: readonly string[], folder: string) => Promise<void> = (ids, folder) => {
    assert.equal(folder, QUARANTINE_FOLDER);
    this.log.push(`quarantine ${ids.length}`);
    for (const id of ids) {
      this.quarantined.push(id);
      this.mails.delete(id);
    }
    return Promise.resolve();
  };
  async *watch(signal: AbortSignal): AsyncIterable<void> {
    yield;
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        this.#poke = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      if (!signal.aborted) yield;
    }
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class Outbox implements Sender {
  readonly label = "fake";
  replies: Reply[] = [];
  /** Mailboxes of the replies, in order. */
  repliedTo: string[] = [];
  intros = 0;
  /** The next send "crashes" after the server accepted it (the 250 is lost with the process). */
  crashAfterAccept = false;
  send(mail: OutgoingMail): Promise<SentInfo> {
    const m = openText(key, mail.text);
    if (m.kind === "reply") {
      this.replies.push(m);
      this.repliedTo.push(mail.to[0]);
    }
    if (m.kind === "intro") this.intros++;
    if (this.crashAfterAccept) {
      this.crashAfterAccept = false;
      return Promise.reject(new Error("killed"));
    }
    return Promise.resolve({ messageId: "<x@fake>", response: "250 ok" });
  }
  close() {
    return Promise.resolve();
  }
  [Symbol.asyncDispose]() {
    return this.close();
  }
}

function requestMail(user: string): Promise<Uint8Array> {
  return requestMailWith(key, user);
}

async function requestMailWith(sealKey: NetworkKey, user: string): Promise<Uint8Array> {
  const replyTo = `${user}@isp-a.test`;
  return (await composeMail({
    from: replyTo,
    to: [HOST],
    subject: MARKER,
    text: sealToText(sealKey, request(user, { address: replyTo })),
  })).raw;
}

function hostOn(path: string, outbox: Sender, events: NodeEvent[], more: Partial<HostSettings> = {}) {
  const table = new PeerTable(path, DEFAULT_POLICY);
  const host = new Host(
    { address: HOST, marker: MARKER, maxAgeMs: 12 * 3600_000, skewMs: 600_000, ...more },
    { key, table, sender: outbox, events: (e) => events.push(e) },
  );
  return { table, host };
}

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("a host sets aside a deeply nested mail, an oversized header and a parser bomb, and answers the rest once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const box = new MemBox(4);
    const outbox = new Outbox();
    const events: NodeEvent[] = [];
    const { table, host } = hostOn(`${dir}/t.db`, outbox, events);
    using _t = table;
    const bad = [box.add(nestedMail(300)), box.add(hugeHeaderMail(200_000)), box.add(partBombMail())];
    for (let i = 0; i < 5; i++) box.add(await requestMail(`u${i}`));
    const reader = new InboxReader(box, { marker: MARKER, key });
    assert.equal(await reader.pass((m) => host.handle(m)), 8);
    assert.deepEqual(outbox.replies.length, 5);
    assert.deepEqual(box.quarantined.sort(), bad.sort());
    assert.equal(box.mails.size, 0);
    assert.equal(events.filter((e) => e.event === "host_dropped").length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mail is deleted in batches as the pass goes, each batch after durable(); afterPass() ends the pass", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const box = new MemBox(2);
    const { table, host } = hostOn(`${dir}/t.db`, new Outbox(), []);
    using _t = table;
    for (let i = 0; i < 5; i++) box.add(await requestMail(`u${i}`));
    const reader = new InboxReader(box, {
      marker: MARKER,
      key,
      durable: () => void box.log.push("durable"),
      afterPass: () => Promise.resolve(void box.log.push("after pass")),
    });
    const handled: string[] = [];
    await reader.pass((m) => {
      box.log.push("handle");
      handled.push(m.id);
      return host.handle(m);
    });
    assert.deepEqual(box.log, [
      ...["handle", "handle", "durable", "delete 2", "commit"],
      ...["handle", "handle", "durable", "delete 2", "commit"],
      ...["handle", "durable", "delete 1", "commit"],
      "after pass",
    ], "what handlers gather across the pass (introductions) is done once, at its end");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with concurrency N at most N handlers work at once; what finishes first is deleted first, after durable()", async () => {
  const box = new MemBox(2);
  for (let i = 0; i < 6; i++) box.add(await requestMail(`u${i}`));
  let durableCalls = 0;
  const reader = new InboxReader(box, {
    marker: MARKER,
    key,
    concurrency: 3,
    durable: () => void durableCalls++,
  });
  const gates = new Map<string, PromiseWithResolvers<void>>();
  let busy = 0;
  let most = 0;
  const started: string[] = [];
  const passing = reader.pass(async (m) => {
    started.push(m.id);
    most = Math.max(most, ++busy);
    const gate = Promise.withResolvers<void>();
    gates.set(m.id, gate);
    await gate.promise;
    busy--;
    return "delete";
  });
  const settle = async (id: string) => {
    while (!gates.has(id)) await new Promise((r) => setTimeout(r, 0));
    gates.get(id)!.resolve();
  };
  // The third and the second finish before the first: the pass goes on with the fourth at once.
  await settle("m3");
  await settle("m2");
  await settle("m4");
  await settle("m1");
  await settle("m5");
  await settle("m6");
  assert.equal(await passing, 6);
  assert.equal(most, 3, "never more than three at once");
  assert.deepEqual(started, ["m1", "m2", "m3", "m4", "m5", "m6"], "taken in the box's order");
  assert.equal(box.mails.size, 0, "all deleted");
  assert.ok(durableCalls >= 3, "each batch of deletions after durable()");
});

Deno.test("a host that gathers replies answers the requests read together in one round when the reader stalls: they name each other, and need no introductions among them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const box = new MemBox(16);
    for (let i = 0; i < 16; i++) box.add(await requestMail(`u${i}`));
    const outbox = new Outbox();
    const events: NodeEvent[] = [];
    const { table, host } = hostOn(`${dir}/t.db`, outbox, events, { gatherReplies: true });
    let stalls = 0;
    const reader = new InboxReader(box, {
      marker: MARKER,
      key,
      concurrency: 8,
      onStall: (stall) => {
        stalls++;
        host.releaseReplies(stall);
      },
      afterPass: () => host.flushIntroductions(),
    });
    assert.equal(await reader.pass((m) => host.handle(m)), 16);
    assert.equal(outbox.replies.length, 16, "every request answered once");
    const first = outbox.replies.slice(0, 8).map((r, i) => ({
      to: outbox.repliedTo[i],
      named: r.peers.map((p) => p.user).sort(),
    }));
    const round = first.map((r) => r.to.split("@")[0]);
    for (const r of first) {
      const mates = round.filter((u) => `${u}@isp-a.test` !== r.to).sort();
      assert.deepEqual(r.named, mates, `${r.to}'s reply names the whole first round`);
    }
    assert.ok(stalls >= 2, "the reader stalled at its limit and at the pass's end");
    // The second round names none of the first in its own replies' stead: it is joined to the
    // group through MIN_INTROS_OUTSIDE_ROUND earlier members, one mail each naming all of it.
    // Answered one by one, every newcomer would be introduced to the 8 before it.
    const told = events.filter((e) => e.event === "host_intro") as { peer: string; newcomer: string }[];
    const earlier = [...new Set(told.map((e) => e.peer))];
    assert.equal(earlier.length, MIN_INTROS_OUTSIDE_ROUND);
    assert.ok(earlier.every((u) => round.includes(u)), "members of the first round");
    assert.equal(told.length, MIN_INTROS_OUTSIDE_ROUND * 8, "each told of all eight newcomers");
    assert.equal(outbox.intros, MIN_INTROS_OUTSIDE_ROUND, "in one mail each");
    table.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a host reading a round's worth at once names MIN_INTROS_OUTSIDE_ROUND earlier members in each reply, who alone are told of the round", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const box = new MemBox(16);
    for (let i = 0; i < 40; i++) box.add(await requestMail(`u${i}`));
    const outbox = new Outbox();
    const events: NodeEvent[] = [];
    const { table, host } = hostOn(`${dir}/t.db`, outbox, events, { gatherReplies: true });
    const reader = new InboxReader(box, {
      marker: MARKER,
      key,
      concurrency: roundLimit(DEFAULT_POLICY.replyLimit),
      onStall: (stall) => host.releaseReplies(stall),
      afterPass: () => host.flushIntroductions(),
    });
    assert.equal(await reader.pass((m) => host.handle(m)), 40);
    const limit = DEFAULT_POLICY.replyLimit;
    assert.ok(outbox.replies.every((r) => r.peers.length <= limit));
    const told = events.filter((e) => e.event === "host_intro") as { peer: string; newcomer: string }[];
    const first = new Set(
      outbox.repliedTo.slice(0, limit + 1 - MIN_INTROS_OUTSIDE_ROUND).map((a) => a.split("@")[0]),
    );
    for (let i = 0; i < 40; i++) {
      const u = `u${i}`;
      const n = told.filter((e) => e.newcomer === u).length;
      assert.equal(n, first.has(u) ? 0 : MIN_INTROS_OUTSIDE_ROUND, `${u} is told to ${n} earlier members`);
    }
    table.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a host that gathers replies strands no request: whatever the box holds, with mail of other kinds between, every request is answered", async () => {
  for (const [n, concurrency] of [[1, 4], [5, 4], [9, 4], [13, 4], [7, 1], [3, 16]]) {
    const dir = await Deno.makeTempDir();
    try {
      const box = new MemBox(16);
      for (let i = 0; i < n; i++) {
        box.add(await requestMail(`u${i}`));
        // A leave for someone never seen: handled at once, never held.
        if (i % 3 === 1) {
          box.add(
            (await composeMail({
              from: "x@isp-a.test",
              to: [HOST],
              subject: MARKER,
              text: sealToText(key, {
                kind: "leave",
                user: `gone${i}`,
                linkKey: new Uint8Array(32),
                time: Date.now(),
                nonce: crypto.getRandomValues(new Uint8Array(16)),
              }),
            })).raw,
          );
        }
      }
      const outbox = new Outbox();
      const { table, host } = hostOn(`${dir}/t.db`, outbox, [], { gatherReplies: true });
      const reader = new InboxReader(box, {
        marker: MARKER,
        key,
        concurrency,
        onStall: (stall) => host.releaseReplies(stall),
      });
      const handled = await Promise.race([
        reader.pass((m) => host.handle(m)),
        new Promise<"stuck">((r) => setTimeout(() => r("stuck"), 5_000)),
      ]);
      assert.notEqual(handled, "stuck", `${n} requests, ${concurrency} at once`);
      assert.equal(outbox.replies.length, n);
      table.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("after a crash a host deletes what it answered without answering again; only the reply in flight repeats", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const box = new MemBox(100);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(box.add(await requestMail(`u${i}`)));
    const first = new Outbox();
    {
      const { table, host } = hostOn(`${dir}/t.db`, first, []);
      using _t = table;
      // The 7th reply is accepted by the server, then the process dies before it hears so.
      let n = 0;
      box.commitFails = new Error("killed");
      const reader = new InboxReader(box, { marker: MARKER, key });
      await assert.rejects(
        reader.pass((m) => {
          if (++n === 7) first.crashAfterAccept = true;
          // Nothing after the crash happens (a permanent failure ends the pass).
          if (n === 8) throw new MailError("killed", "config");
          return host.handle(m);
        }),
        /killed/,
      );
    }
    assert.equal(first.replies.length, 7);
    assert.equal(box.mails.size, 10, "nothing was deleted before the crash");
    box.commitFails = undefined;
    const second = new Outbox();
    const events: NodeEvent[] = [];
    const { table, host } = hostOn(`${dir}/t.db`, second, events);
    using _t = table;
    await new InboxReader(box, { marker: MARKER, key }).pass((m) => host.handle(m));
    assert.equal(box.mails.size, 0);
    // 6 answered before the crash: deleted unanswered. The 7th (250 lost) and the 3 never reached: answered.
    assert.equal(second.replies.length, 4);
    assert.equal(
      events.filter((e) => e.event === "host_dropped" && /answered before a restart/.test(e.reason)).length,
      6,
    );
    const users = new Set([...first.replies, ...second.replies].map((r) => r.session.join(",")));
    assert.equal(first.replies.length + second.replies.length - users.size, 1, "one duplicate for one kill");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a mail whose handler failed is tried again after a pause, with no new mail", async () => {
  const box = new MemBox(16);
  box.add(enc(`Subject: ${MARKER}\r\n\r\nx`));
  let calls = 0;
  const ctl = new AbortController();
  const reader = new InboxReader(box, { marker: MARKER, key, onError: () => {}, retryPassMs: 1 });
  await reader.run(ctl.signal, () => {
    if (++calls < 3) return Promise.reject(new MailError("Sending failed for now.", "temporary"));
    ctl.abort();
    return Promise.resolve("delete");
  });
  assert.equal(calls, 3);
});

Deno.test("run() says it is watching once its first pass has read the box, and a mail after that wakes it", async () => {
  const box = new MemBox(16);
  box.add(enc(`Subject: ${MARKER}\r\n\r\nold`));
  const seen: string[] = [];
  const watching = Promise.withResolvers<void>();
  const ctl = new AbortController();
  const reader = new InboxReader(box, {
    marker: MARKER,
    key,
    onWatching: () => {
      seen.push(`watching after ${box.fetched.length} read`);
      watching.resolve();
    },
  });
  const second = Promise.withResolvers<void>();
  let handled = 0;
  const running = reader.run(ctl.signal, () => {
    if (++handled === 2) second.resolve();
    return Promise.resolve("delete");
  });
  await watching.promise;
  // What a peer does next: it sends its request; the reply then wakes the waiting reader.
  const reply = box.add(enc(`Subject: ${MARKER}\r\n\r\nreply`));
  await second.promise;
  ctl.abort();
  await running;
  assert.deepEqual(seen, ["watching after 1 read"]);
  assert.equal(box.fetched.at(-1), reply);
});

Deno.test("run() waits out a mail server outage, says so once, and gives up at its deadline with the last error", async () => {
  let now = 0;
  const said: string[] = [];
  const recovered = Promise.withResolvers<void>();
  const patience = new Patience({
    deadline: () => 60_000,
    clock: () => now,
    random: () => 0.5,
    sleep: (ms) => {
      now += ms;
      return Promise.resolve();
    },
    onWaiting: (what, err) => said.push(`waiting ${what}: ${err.code}`),
    onRecovered: (what) => {
      said.push(`recovered ${what}`);
      recovered.resolve();
    },
  });
  const box = new MemBox(16);
  box.failLists = 3;
  const ctl = new AbortController();
  const reader = new InboxReader(box, { marker: MARKER, key, patience });
  const running = reader.run(ctl.signal, () => Promise.resolve("keep"));
  box.add(enc(`Subject: ${MARKER}\r\n\r\nx`));
  // The first watch's pass failed 3 times; the 4th works and the loop goes on until aborted.
  await recovered.promise;
  ctl.abort();
  await running;
  assert.deepEqual(said, ["waiting reading: connect", "recovered reading"]);
  assert.ok(now > 0 && now < 60_000);

  // An outage longer than the deadline: the last error ends run().
  box.failLists = 1_000;
  const late = new InboxReader(box, { marker: MARKER, key, patience });
  await assert.rejects(
    late.run(new AbortController().signal, () => Promise.resolve("keep")),
    /Cannot connect/,
  );
  assert.ok(now >= 60_000 - 10_000);
});

Deno.test("SMTP 454 at AUTH is a temporary failure, 535 a wrong password", () => {
  const account = parseAccount("smtp://bob%40isp-b.test:secret@127.0.0.1:10587");
  const temp = toMailError(
    Object.assign(new Error("Invalid login: 454 4.7.0 Temporary authentication failure"), {
      code: "EAUTH",
      responseCode: 454,
      response: "454 4.7.0 Temporary authentication failure",
    }),
    account,
  );
  assert.equal(temp.code, "temporary");
  assert.doesNotMatch(temp.message, /refused the password/);
  const wrong = toMailError(
    Object.assign(new Error("Invalid login: 535 5.7.8 Error: authentication failed"), {
      code: "EAUTH",
      responseCode: 535,
      response: "535 5.7.8 Error: authentication failed",
    }),
    account,
  );
  assert.equal(wrong.code, "auth");
});

Deno.test("patience retries a 454 temporary authentication failure; a wrong password ends it at once", async () => {
  let now = 0;
  const patience = new Patience({
    deadline: () => 30_000,
    clock: () => now,
    sleep: (ms) => {
      now += ms;
      return Promise.resolve();
    },
  });
  let tries = 0;
  const out = await patience.run("sending", () => {
    if (++tries < 4) {
      return Promise.reject(
        new MailError("127.0.0.1:10587 cannot check the password right now.", "temporary", {
          response: "454 4.7.0 Temporary authentication failure",
        }),
      );
    }
    return Promise.resolve("sent");
  });
  assert.equal(out, "sent");
  assert.equal(tries, 4);
  tries = 0;
  await assert.rejects(
    patience.run("sending", () => {
      tries++;
      return Promise.reject(new MailError("Cannot log in: the server refused the password.", "auth"));
    }),
    /refused the password/,
  );
  assert.equal(tries, 1);
});

/** Marker mail with `text` as its body. */
const marked = (text: string) =>
  enc(`Subject: ${MARKER}\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\n${text}`);

Deno.test("each disposition: delete removes the mail, keep leaves it unread for the run, later reopens it next pass, quarantine sets it aside", async () => {
  const box = new MemBox(16);
  const ids = {
    delete: box.add(marked("a")),
    keep: box.add(marked("b")),
    later: box.add(marked("c")),
    quarantine: box.add(marked("d")),
  };
  const byId = new Map(Object.entries(ids).map(([d, id]) => [id, d as Disposition]));
  const seen: string[] = [];
  const reader = new InboxReader(box, { marker: MARKER, key });
  const handler = (m: InboundMail) => {
    seen.push(byId.get(m.id)!);
    return Promise.resolve(byId.get(m.id)!);
  };
  assert.equal(await reader.pass(handler), 4);
  assert.deepEqual(seen, ["delete", "keep", "later", "quarantine"]);
  assert.deepEqual([...box.mails.keys()].sort(), [ids.keep, ids.later].sort());
  assert.deepEqual(box.quarantined, [ids.quarantine]);
  seen.length = 0;
  assert.equal(await reader.pass(handler), 1);
  assert.deepEqual(seen, ["later"], "kept mail is not read again this run; 'later' is");
  assert.equal(
    await new InboxReader(box, { marker: MARKER, key }).pass(handler),
    2,
    "a new run reads kept mail again",
  );
});

Deno.test("on a mailbox without folders, quarantined mail is deleted", async () => {
  const box = new MemBox(16);
  box.quarantine = undefined;
  const id = box.add(marked("d"));
  await new InboxReader(box, { marker: MARKER, key }).pass(() => Promise.resolve("quarantine"));
  assert.equal(box.mails.has(id), false);
  assert.deepEqual(box.log, ["delete 1", "commit"]);
});

Deno.test("marker mail that is no mailmeet message, or sealed with another key, reaches the handler as a typed error, not a crash", async () => {
  const box = new MemBox(16);
  const other = networkKeyFromSecret(new Uint8Array(32).fill(8));
  const noBlock = box.add(marked("just a note with our subject"));
  const otherKey = box.add(await requestMailWith(other, "eve"));
  const ours = box.add(await requestMail("ann"));
  const got = new Map<string, string>();
  await new InboxReader(box, { marker: MARKER, key }).pass((m) => {
    got.set(m.id, m.message instanceof ProtocolError ? m.message.code : m.message.kind);
    return Promise.resolve("keep");
  });
  assert.deepEqual(Object.fromEntries(got), {
    [noBlock]: "malformed",
    [otherKey]: "unsealed",
    [ours]: "request",
  });
});

Deno.test("a mail too large to be ours is skipped: reported once, never handed to a handler, never deleted", async () => {
  const box = new MemBox(16);
  const big = box.add(marked("x"));
  box.tooLarge.add(big);
  const small = box.add(marked("y"));
  const skipped: string[] = [];
  const handled: string[] = [];
  const reader = new InboxReader(box, { marker: MARKER, key, onSkip: (id) => skipped.push(id) });
  const handler = (m: InboundMail) => {
    handled.push(m.id);
    return Promise.resolve("delete" as const);
  };
  assert.equal(await reader.pass(handler), 1);
  assert.equal(await reader.pass(handler), 0);
  assert.deepEqual(skipped, [big], "said once");
  assert.deepEqual(handled, [small]);
  assert.ok(box.mails.has(big), "left for its owner");
  assert.equal(box.fetched.filter((id) => id === big).length, 1, "not fetched again this run");
});

Deno.test("a mail gone between list and fetch (another reader took it) is skipped without a word", async () => {
  const box = new MemBox(16);
  const gone = box.add(marked("x"));
  const realFetch = box.fetch.bind(box);
  box.fetch = (id: string) => {
    box.mails.delete(gone);
    return realFetch(id);
  };
  const skipped: string[] = [];
  const handled: string[] = [];
  const n = await new InboxReader(box, { marker: MARKER, key, onSkip: (id) => skipped.push(id) })
    .pass((m) => {
      handled.push(m.id);
      return Promise.resolve("delete");
    });
  assert.equal(n, 0);
  assert.deepEqual([skipped, handled], [[], []]);
});

Deno.test("a handler's permanent mail failure ends the pass unless onError takes it; then the mail stays and is tried again", async () => {
  const box = new MemBox(16);
  const id = box.add(marked("x"));
  const permanent = new MailError("The server refused the mail.", "rejected");
  await assert.rejects(
    new InboxReader(box, { marker: MARKER, key }).pass(() => Promise.reject(permanent)),
    /refused the mail/,
  );
  const errors: string[] = [];
  const reader = new InboxReader(box, { marker: MARKER, key, onError: (i) => errors.push(i) });
  assert.equal(await reader.pass(() => Promise.reject(permanent)), 0);
  assert.deepEqual(errors, [id]);
  assert.ok(box.mails.has(id), "at-least-once: the work is not done, the mail stays");
  assert.equal(await reader.pass(() => Promise.resolve("delete")), 1, "not settled: tried again");
  assert.equal(box.mails.has(id), false);
});

Deno.test("a bounce about our mail is deleted and committed before settled() runs; another bounce is kept and read once", async () => {
  const dsn = await Deno.readFile(new URL("../fixtures/dsn_postfix_unknown_domain.eml", import.meta.url));
  const box = new MemBox(16);
  const ours = box.add(dsn);
  const theirs = box.add(dsn);
  box.reportIds.add(ours).add(theirs);
  const seen: string[] = [];
  const reader = new InboxReader(box, {
    marker: MARKER,
    key,
    reports: {
      wanted: () => true,
      handle: (id, report) => {
        seen.push(`${id} ${report.messageId}`);
        return id === ours ? "delete" : "keep";
      },
      settled: () => box.log.push("settled"),
    },
  });
  await reader.pass(() => Promise.resolve("keep"));
  await reader.pass(() => Promise.resolve("keep"));
  assert.deepEqual(seen, [ours, theirs].map((id) => `${id} aaac873f-a181-bc38-d6ab-7da8f6ab503c@isp-a.test`));
  assert.deepEqual(box.log, ["delete 1", "commit", "settled", "settled"]);
  assert.deepEqual([...box.mails.keys()], [theirs]);
});
