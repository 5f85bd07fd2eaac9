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
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import type { Reply } from "../../src/protocol/messages.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import { Host } from "../../src/roles/host.ts";
import { InboxReader, QUARANTINE_FOLDER } from "../../src/roles/inbox.ts";
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
  quarantine(ids: readonly string[], folder: string): Promise<void> {
    assert.equal(folder, QUARANTINE_FOLDER);
    this.log.push(`quarantine ${ids.length}`);
    for (const id of ids) {
      this.quarantined.push(id);
      this.mails.delete(id);
    }
    return Promise.resolve();
  }
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
  /** The next send "crashes" after the server accepted it (the 250 is lost with the process). */
  crashAfterAccept = false;
  send(mail: OutgoingMail): Promise<SentInfo> {
    const m = openText(key, mail.text);
    if (m.kind === "reply") this.replies.push(m);
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

async function requestMail(user: string): Promise<Uint8Array> {
  const replyTo = `${user}@isp-a.test`;
  return (await composeMail({
    from: replyTo,
    to: [HOST],
    subject: MARKER,
    text: sealToText(key, request(user, { address: replyTo })),
  })).raw;
}

function hostOn(path: string, outbox: Sender, events: NodeEvent[]) {
  const table = new PeerTable(path, DEFAULT_POLICY);
  const host = new Host(
    { address: HOST, marker: MARKER, maxAgeMs: 12 * 3600_000, skewMs: 600_000 },
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

Deno.test("mail is deleted in batches as the pass goes, each batch after durable()", async () => {
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
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
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

Deno.test("run() waits out a mail server outage, says so once, and gives up at its deadline with the last error", async () => {
  let now = 0;
  const said: string[] = [];
  const patience = new Patience({
    deadline: () => 60_000,
    clock: () => now,
    random: () => 0.5,
    sleep: (ms) => {
      now += ms;
      return Promise.resolve();
    },
    onWaiting: (what, err) => said.push(`waiting ${what}: ${err.code}`),
    onRecovered: (what) => said.push(`recovered ${what}`),
  });
  const box = new MemBox(16);
  box.failLists = 3;
  const ctl = new AbortController();
  const reader = new InboxReader(box, { marker: MARKER, key, patience });
  const running = reader.run(ctl.signal, () => Promise.resolve("keep"));
  box.add(enc(`Subject: ${MARKER}\r\n\r\nx`));
  // The first watch's pass failed 3 times; the 4th works and the loop goes on until aborted.
  while (said.length < 2) await new Promise((r) => setTimeout(r, 0));
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
