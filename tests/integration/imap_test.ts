/**
 * The IMAP client against the real Dovecot (behind Postfix) that tests/helpers/mailstack.ts runs
 * on 127.0.0.1 with a private CA: STARTTLS on the imap port and implicit TLS on imaps.
 */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { MailError } from "../../src/mail/errors.ts";
import type { Mailbox, MessageInfo } from "../../src/mail/mailbox.ts";
import { openImapMailbox } from "../../src/mail/imap.ts";
import { type MailStack, mailStack } from "../helpers/mailstack.ts";
import { Waiters } from "../helpers/waiters.ts";

const enc = (s: string) => new TextEncoder().encode(s);
type Kind = "imap" | "imaps";
const KINDS: Kind[] = ["imap", "imaps"];

function message(to: string, subject: string, body = "hello\r\n"): string {
  const date = new Date().toUTCString();
  const id = `<${crypto.randomUUID()}@isp-a.test>`;
  return `From: tester@isp-a.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: ${date}\r\nMessage-ID: ${id}\r\n` +
    `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`;
}

function isCode(code: string) {
  return (e: unknown) => e instanceof MailError && e.code === code;
}

/** CRLF line ends: Dovecot may keep LF on disk but serves CRLF, as RFC 5322 §2.1 requires on the wire. */
function crlf(bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder("latin1").decode(bytes).replace(/\r?\n/g, "\r\n");
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

async function open(
  stack: MailStack,
  kind: Kind,
  address: string,
  log?: string[],
  onIdle?: () => void,
): Promise<Mailbox> {
  return await openImapMailbox(parseAccount(stack.url(kind, address)), {
    caCerts: [stack.caPem],
    log: log ? (l) => log.push(l) : undefined,
    onIdle,
    // Long enough that only an IDLE push can explain a quick wake-up.
    pollIntervalMs: 60_000,
  });
}

/** The next value of an iterator, or "timeout" after `ms`. */
async function nextWithin(it: AsyncIterator<void>, ms: number): Promise<"yield" | "done" | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)));
  try {
    return await Promise.race([it.next().then((r) => (r.done ? "done" : "yield") as "yield" | "done"), t]);
  } finally {
    clearTimeout(timer);
  }
}

for (const kind of KINDS) {
  Deno.test(`${kind}: list finds only marker mail, fetch returns the stored bytes, delete+commit leaves personal mail`, async () => {
    await using stack = await mailStack();
    const me = stack.freshAddress(`${kind}-list`);
    const marker = `[mailmeet-${crypto.randomUUID().slice(0, 8)}]`;
    await stack.deliverRaw(
      me,
      message(me, `${marker} request one`, "line one\r\n* 1 EXISTS\r\nA1 NO BAD\r\n"),
    );
    await stack.deliverRaw(me, message(me, "Lunch on friday?"));
    await stack.deliverRaw(me, message(me, `Re: ${marker.toUpperCase()} request two`));
    await stack.waitForMessages(me, 3);
    await using mb = await open(stack, kind, me);

    const found = await mb.list(marker);
    assert.deepEqual(found.map((m) => m.subject), [
      `${marker} request one`,
      `Re: ${marker.toUpperCase()} request two`,
    ]);
    for (const m of found) {
      assert.match(m.id, /^\d+:\d+$/);
      assert.ok(m.size > 0 && m.date instanceof Date);
    }
    const stored = await stack.rawMessages(me);
    const first = await mb.fetch(found[0].id, 1024 * 1024);
    const match = stored.find((raw) => new TextDecoder().decode(raw).includes(`${marker} request one`));
    assert.ok(match);
    assert.deepEqual(crlf(first), crlf(match));
    assert.equal(first.length, found[0].size);

    await mb.delete(found.map((m) => m.id));
    assert.equal((await mb.list(marker)).length, 2, "nothing removed before commit");
    await mb.commit();
    assert.deepEqual(await mb.list(marker), []);
    const left = await stack.rawMessages(me);
    assert.equal(left.length, 1);
    assert.match(new TextDecoder().decode(left[0]), /Subject: Lunch on friday\?/);
    await assert.rejects(() => mb.fetch(found[0].id, 1024 * 1024), isCode("not_found"));
  });

  Deno.test(`${kind}: a message over the size cap is 'too_large' and the connection stays usable`, async () => {
    await using stack = await mailStack();
    const me = stack.freshAddress(`${kind}-cap`);
    await stack.deliverRaw(me, message(me, "[mm-cap] big", "x".repeat(20_000) + "\r\n"));
    await stack.waitForMessages(me, 1);
    const log: string[] = [];
    await using mb = await open(stack, kind, me, log);
    const [big] = await mb.list("[mm-cap]");
    await assert.rejects(() => mb.fetch(big.id, 4096), (e: unknown) => {
      assert.ok(e instanceof MailError && e.code === "too_large", String(e));
      assert.match(e.message, /not downloaded/);
      return true;
    });
    assert.equal((await mb.fetch(big.id, 100_000)).length, big.size);
    // Had the body been requested, the capped reader would have had to drop the connection.
    assert.deepEqual(log, []);
  });

  Deno.test(`${kind}: fetchMany gets several bodies in one exchange, in the order asked; one too large or gone is its error, the rest arrive`, async () => {
    await using stack = await mailStack();
    const me = stack.freshAddress(`${kind}-many`);
    const marker = "[mm-many]";
    for (let i = 0; i < 4; i++) await stack.deliverRaw(me, message(me, `${marker} ${i}`, `body ${i}\r\n`));
    await stack.deliverRaw(me, message(me, `${marker} big`, "x".repeat(20_000) + "\r\n"));
    await stack.waitForMessages(me, 5);
    const log: string[] = [];
    await using mb = await open(stack, kind, me, log);
    const found = await mb.list(marker);
    const big = found.find((m) => m.subject.endsWith("big"))!;
    const small = found.filter((m) => m !== big);
    // One of them is gone by the time it is fetched (another reader took it).
    await mb.delete([small[1].id]);
    await mb.commit();
    const asked = [small[3].id, big.id, small[1].id, small[0].id, small[2].id];
    const got = await mb.fetchMany!(asked, 4096);
    const text = (x: Uint8Array | MailError) => x instanceof MailError ? x.code : new TextDecoder().decode(x);
    assert.match(String(text(got[0])), /body 3/);
    assert.equal(text(got[1]), "too_large");
    assert.equal(text(got[2]), "not_found");
    assert.match(String(text(got[3])), /body 0/);
    assert.match(String(text(got[4])), /body 2/);
    assert.deepEqual(
      crlf(got[3] as Uint8Array),
      crlf(await mb.fetch(small[0].id, 4096)),
      "the same bytes fetch() gives",
    );
  });

  Deno.test(`${kind}: a wrong password is MailError 'auth' with the sentence and without the password`, async () => {
    await using stack = await mailStack();
    const me = stack.freshAddress(`${kind}-auth`);
    const url = new URL(stack.url(kind, me));
    const wrong = `Wr0ng-${crypto.randomUUID()}`;
    url.password = encodeURIComponent(wrong);
    const err = await openImapMailbox(parseAccount(url.toString()), { caCerts: [stack.caPem] }).then(
      () => assert.fail("logged in with a wrong password"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MailError && err.code === "auth", String(err));
    assert.equal(
      err.message,
      `Cannot log in to ${url.hostname}:${url.port} as "${me}": the server refused the password. Check it, or use an app password.`,
    );
    for (const t of [err.message, err.command ?? "", err.response ?? "", err.stack ?? ""]) {
      assert.ok(!t.includes(wrong), t);
    }
  });

  Deno.test(`${kind}: a server certificate from an untrusted CA is refused with 'tls'`, async () => {
    await using stack = await mailStack();
    const me = stack.freshAddress(`${kind}-ca`);
    await assert.rejects(() => openImapMailbox(parseAccount(stack.url(kind, me))), isCode("tls"));
  });
}

Deno.test("imap: the default (STARTTLS) refuses a server that does not offer STARTTLS", async () => {
  // Dovecot always offers STARTTLS here, so a tiny server stands in for one that does not.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const received: string[] = [];
  const serve = (async () => {
    const conn = await listener.accept();
    await conn.write(enc("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE] no TLS here\r\n"));
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      const text = new TextDecoder().decode(buf.subarray(0, n));
      received.push(text);
      const tag = text.split(" ")[0];
      if (/CAPABILITY/i.test(text)) {
        await conn.write(enc(`* CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE\r\n${tag} OK\r\n`));
      } else await conn.write(enc(`${tag} NO go away\r\n`));
    }
    conn.close();
  })();
  try {
    await assert.rejects(
      () => openImapMailbox(parseAccount(`imap://bob%40isp-b.test:secret@127.0.0.1:${port}/INBOX`)),
      (e: unknown) => e instanceof MailError && e.code === "tls" && /does not offer STARTTLS/.test(e.message),
    );
  } finally {
    listener.close();
    await serve;
  }
  assert.ok(!received.join("").includes("secret"));
  assert.ok(!/LOGIN|AUTHENTICATE/i.test(received.join("")));
});

for (const kind of KINDS) {
  Deno.test(`${kind}: watch is woken by an IDLE push within seconds of delivery`, async () => {
    await using stack = await mailStack();
    const me = stack.freshAddress(`${kind}-idle`);
    const idle = new Waiters();
    await using mb = await open(stack, kind, me, undefined, idle.fire);
    const ctl = new AbortController();
    const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
    try {
      assert.equal(await nextWithin(it, 5000), "yield");
      assert.deepEqual(await mb.list("[mm-idle]"), []);
      // The watch enters IDLE only once asked for its next wake-up (just below).
      const idling = idle.next();
      const woken = nextWithin(it, 15_000).then((r) => ({ r, at: Date.now() }));
      await idling; // Dovecot accepted the IDLE: a delivery now is pushed
      await stack.deliverRaw(me, message(me, "[mm-idle] ping"));
      const inBox = Date.now(); // deliverRaw resolves once the file is in the Maildir
      const { r, at } = await woken;
      assert.equal(r, "yield");
      assert.ok(at - inBox < 2500, `IDLE push came ${at - inBox} ms after the message was in the mailbox`);
      assert.equal((await mb.list("[mm-idle]")).length, 1);
    } finally {
      ctl.abort();
      await it.return?.();
    }
  });
}

Deno.test("imaps: restarting Dovecot while watching reconnects; new mail is seen and nothing counts as new twice", async () => {
  await using stack = await mailStack();
  const me = stack.freshAddress("imaps-restart");
  const log: string[] = [];
  await using mb = await open(stack, "imaps", me, log);
  await stack.deliverRaw(me, message(me, "[mm-rs] before"));
  await stack.waitForMessages(me, 1);

  const seen = new Set<string>();
  const fresh: MessageInfo[] = [];
  const ctl = new AbortController();
  let yields = 0;
  const consumer = (async () => {
    for await (const _ of mb.watch(ctl.signal)) {
      yields++;
      for (const m of await mb.list("[mm-rs]")) {
        if (seen.has(m.id)) continue;
        seen.add(m.id);
        fresh.push(m);
      }
      if (fresh.some((m) => m.subject.endsWith("after"))) break;
    }
  })();
  try {
    await waitFor(() => fresh.length === 1, 10_000, "the first message");
    await stack.restartDovecot();
    await waitFor(() => log.some((l) => l.startsWith("Reconnected")), 60_000, "a reconnect");
    await stack.deliverRaw(me, message(me, "[mm-rs] after"));
    await withDeadline(consumer, 30_000, "the message delivered after the restart");
  } finally {
    ctl.abort();
    await consumer.catch(() => {});
  }
  assert.deepEqual(fresh.map((m) => m.subject), ["[mm-rs] before", "[mm-rs] after"]);
  assert.equal(new Set(fresh.map((m) => m.id)).size, 2);
  assert.ok(yields >= 3, `yields: ${yields}`); // start, after the reconnect, on the new mail
  for (const l of log) assert.ok(!l.includes(stack.password), l);
});

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((
        _,
        rej,
      ) => (timer = setTimeout(() => rej(new Error(`Timed out waiting for ${what}.`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
