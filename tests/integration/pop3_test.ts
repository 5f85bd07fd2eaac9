/** The POP3 client against the real Dovecot (scripts/mailstack.sh), by STLS (pop3) and implicit TLS (pop3s). */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { MailError } from "../../src/mail/errors.ts";
import type { Mailbox, MailboxOptions } from "../../src/mail/mailbox.ts";
import { openPop3Mailbox } from "../../src/mail/pop3.ts";
import { type MailStack, mailStack } from "../helpers/mailstack.ts";

const MARKER = "[mailmeet]";
const KINDS = ["pop3", "pop3s"] as const;
type Kind = typeof KINDS[number];
const POLL_MS = 200;

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function mail(to: string, subject: string, body = "Hello.\r\n"): string {
  return [
    "From: Alice <alice@isp-a.test>",
    `To: ${to}`,
    `Subject: ${subject}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${crypto.randomUUID()}@isp-a.test>`,
    "",
    body,
  ].join("\r\n");
}

/** The Maildir file holds LF line ends; POP3 sends every line with CRLF (RFC 1939 §3). */
function crlf(bytes: Uint8Array): string {
  return dec(bytes).replace(/\r?\n/g, "\r\n");
}

async function open(
  stack: MailStack,
  kind: Kind,
  address: string,
  opts: MailboxOptions = {},
): Promise<Mailbox> {
  return await openPop3Mailbox(parseAccount(stack.url(kind, address)), { caCerts: [stack.caPem], ...opts });
}

async function subjects(stack: MailStack, address: string): Promise<string[]> {
  return (await stack.rawMessages(address)).map((m) => /^Subject: (.*)$/m.exec(dec(m))?.[1]?.trim() ?? "");
}

/** Test options shared by every test here: the stack's processes outlive a test on purpose. */
function test(name: string, fn: (stack: MailStack) => Promise<void>): void {
  Deno.test({ name, sanitizeResources: false, sanitizeOps: false }, async () => {
    await using stack = await mailStack();
    await fn(stack);
  });
}

for (const kind of KINDS) {
  test(`${kind}: list finds only mail whose subject carries the marker, without downloading bodies`, async (stack) => {
    const me = stack.freshAddress("bob", "isp-b.test");
    await stack.deliverRaw(me, mail(me, `${MARKER} request one`));
    await stack.deliverRaw(me, mail(me, "Lunch on Friday?"));
    await stack.deliverRaw(me, mail(me, "Re: [MailMeet] reply two"));
    await using mb = await open(stack, kind, me);
    const listed = await mb.list(MARKER);
    // in maildrop (arrival) order
    assert.deepEqual(listed.map((m) => m.subject), [
      `${MARKER} request one`,
      "Re: [MailMeet] reply two",
    ]);
    for (const m of listed) {
      assert.ok(m.size > 0);
      assert.ok(m.date instanceof Date);
    }
    assert.equal(new Set(listed.map((m) => m.id)).size, 2);
  });

  test(`${kind}: fetch returns the stored message byte for byte, body lines starting with "." included`, async (stack) => {
    const me = stack.freshAddress("bob", "isp-b.test");
    const body = ".starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n";
    await stack.deliverRaw(me, mail(me, `${MARKER} dots`, body));
    await using mb = await open(stack, kind, me);
    const [info] = await mb.list(MARKER);
    const got = await mb.fetch(info.id, 1 << 20);
    const [stored] = await stack.rawMessages(me);
    assert.equal(dec(got), crlf(stored));
    assert.ok(dec(got).endsWith(`\r\n\r\n${body}`), JSON.stringify(dec(got).slice(-120)));
    assert.equal(got.length, info.size, "LIST size and RETR bytes agree");
  });

  test(`${kind}: delete + commit removes exactly those messages and leaves personal mail alone`, async (stack) => {
    const me = stack.freshAddress("host", "isp-b.test");
    await stack.deliverRaw(me, mail(me, `${MARKER} first`));
    await stack.deliverRaw(me, mail(me, "Personal: holiday photos"));
    await stack.deliverRaw(me, mail(me, `${MARKER} second`));
    await using mb = await open(stack, kind, me);
    const listed = await mb.list(MARKER);
    const first = listed.find((m) => m.subject.endsWith("first"))!;
    await mb.delete([first.id]);
    await mb.commit();
    assert.deepEqual(
      (await subjects(stack, me)).sort(),
      [`${MARKER} second`, "Personal: holiday photos"].sort(),
    );
    // the next operation runs in a new session
    assert.deepEqual((await mb.list(MARKER)).map((m) => m.subject), [`${MARKER} second`]);
  });

  test(`${kind}: delete without commit, then close, removes nothing`, async (stack) => {
    const me = stack.freshAddress("host", "isp-b.test");
    await stack.deliverRaw(me, mail(me, `${MARKER} keep me`));
    await stack.deliverRaw(me, mail(me, `${MARKER} keep me too`));
    const mb = await open(stack, kind, me);
    await mb.delete((await mb.list(MARKER)).map((m) => m.id));
    assert.deepEqual(await mb.list(MARKER), []);
    await mb.close();
    assert.equal((await stack.rawMessages(me)).length, 2);
    await using again = await open(stack, kind, me);
    assert.equal((await again.list(MARKER)).length, 2);
  });

  test(`${kind}: a message over the size cap is too_large and is not downloaded`, async (stack) => {
    const me = stack.freshAddress("bob", "isp-b.test");
    await stack.deliverRaw(me, mail(me, `${MARKER} big`, "y".repeat(5000) + "\r\n"));
    await using mb = await open(stack, kind, me);
    const [info] = await mb.list(MARKER);
    await assert.rejects(() => mb.fetch(info.id, 1024), (e: unknown) => {
      assert.ok(e instanceof MailError && e.code === "too_large", String(e));
      return true;
    });
    // the session is still fine for a fetch under a larger cap
    assert.equal((await mb.fetch(info.id, 1 << 20)).length, info.size);
  });

  test(`${kind}: a wrong password is an auth error with one clear sentence and no password in it`, async (stack) => {
    const me = stack.freshAddress("bob", "isp-b.test");
    const wrong = "Wr0ng-" + crypto.randomUUID();
    const url = new URL(stack.url(kind, me));
    url.password = wrong;
    await assert.rejects(
      () => openPop3Mailbox(parseAccount(url.toString()), { caCerts: [stack.caPem] }),
      (e: unknown) => {
        assert.ok(e instanceof MailError && e.code === "auth", String(e));
        const port = kind === "pop3" ? stack.ports.pop3 : stack.ports.pop3s;
        assert.equal(
          e.message,
          `Cannot log in to ${stack.host}:${port} as "${me}": the server refused the password. Check it, or use an app password.`,
        );
        const shown = [e.message, e.command, e.response, String(e.cause ?? "")].join("\n");
        assert.ok(!shown.includes(wrong) && !shown.includes(stack.password), shown);
        return true;
      },
    );
  });

  test(`${kind}: a server certificate from an untrusted CA is a tls error`, async (stack) => {
    const me = stack.freshAddress("bob", "isp-b.test");
    await assert.rejects(() => openPop3Mailbox(parseAccount(stack.url(kind, me)), {}), (e: unknown) => {
      assert.ok(e instanceof MailError && e.code === "tls", String(e));
      assert.match(e.message, /--tls-ca/);
      return true;
    });
  });

  test(`${kind}: watch sees a new message within about one poll interval`, async (stack) => {
    const me = stack.freshAddress("alice", "isp-b.test");
    await using mb = await open(stack, kind, me, { pollIntervalMs: POLL_MS });
    const ac = new AbortController();
    const it = mb.watch(ac.signal)[Symbol.asyncIterator]();
    try {
      assert.equal((await it.next()).done, false); // at once
      assert.deepEqual(await mb.list(MARKER), []);
      await stack.deliverRaw(me, mail(me, `${MARKER} new arrival`));
      const t0 = Date.now();
      await nextWithin(it, 10_000);
      const took = Date.now() - t0;
      assert.deepEqual((await mb.list(MARKER)).map((m) => m.subject), [`${MARKER} new arrival`]);
      // one interval, plus a TLS session setup; generous for a loaded machine
      assert.ok(took < POLL_MS + 800, `seen after ${took} ms`);
    } finally {
      ac.abort();
      await it.return?.();
    }
  });
}

test("pop3s: a watch polling across a Dovecot restart keeps going and sees mail delivered after it", async (stack) => {
  const me = stack.freshAddress("alice", "isp-b.test");
  const log: string[] = [];
  await stack.deliverRaw(me, mail(me, `${MARKER} before`));
  await using mb = await open(stack, "pop3s", me, { pollIntervalMs: POLL_MS, log: (l) => log.push(l) });
  const ac = new AbortController();
  const seen: string[][] = [];
  // The caller's loop, as src/roles/inbox.ts runs it: list on every wake-up.
  const loop = (async () => {
    for await (const _ of mb.watch(ac.signal)) seen.push((await mb.list(MARKER)).map((m) => m.subject));
  })();
  try {
    await waitUntil(() => seen.length > 0, 5_000);
    await stack.restartDovecot();
    await stack.deliverRaw(me, mail(me, `${MARKER} after restart`));
    await waitUntil(() => seen.some((l) => l.includes(`${MARKER} after restart`)), 20_000);
    assert.deepEqual(seen.at(-1), [`${MARKER} before`, `${MARKER} after restart`]);
    // Whether a poll fell into the downtime (refused, then backoff) depends on timing; either way no secrets.
    assert.ok(!log.join("\n").includes(stack.password), log.join("\n"));
  } finally {
    ac.abort();
    await loop;
  }
});

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The next wake-up of a watch, or an error after timeoutMs. */
async function nextWithin(it: AsyncIterator<void>, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([
    it.next(),
    new Promise<"timeout">((res) => (timer = setTimeout(() => res("timeout"), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (r === "timeout") throw new Error(`watch() did not wake up within ${timeoutMs} ms`);
  if (r.done) throw new Error("watch() ended");
}
