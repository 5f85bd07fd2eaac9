import assert from "node:assert/strict";
import { join } from "node:path";
import { compareNames, deliverToMaildir, maildirFor } from "../../src/mail/maildir.ts";
import { openMaildirMailbox } from "../../src/mail/maildir.ts";
import { parseAccount } from "../../src/mail/account.ts";

const openMailbox = (url: string, opts: { address?: string } = {}) =>
  openMaildirMailbox(parseAccount(url), opts);
import { composeMail, openSender } from "../../src/mail/smtp.ts";
import { MailError } from "../../src/mail/errors.ts";

const MARKER = "mailmeet rendezvous";

async function raw(subject: string, body = "hello", to = "bob@b.test") {
  return (await composeMail({ from: "alice@a.test", to: [to], subject, text: body })).raw;
}

Deno.test("maildir delivery writes into new/ through tmp/ and the mailbox lists only marker mail", async () => {
  const spool = await Deno.makeTempDir();
  try {
    await deliverToMaildir(spool, ["Bob@B.test"], await raw("personal note"));
    await deliverToMaildir(spool, ["bob@b.test"], await raw(`Re: ${MARKER}`));
    const dir = maildirFor(spool, "bob@b.test");
    assert.equal((await Array.fromAsync(Deno.readDir(join(dir, "new")))).length, 2);
    assert.equal((await Array.fromAsync(Deno.readDir(join(dir, "tmp")))).length, 0);
    await using box = await openMailbox(`maildir://${spool}`, { address: "bob@b.test" });
    const list = await box.list("MAILMEET Rendezvous");
    assert.equal(list.length, 1);
    assert.equal(list[0].subject, `Re: ${MARKER}`);
    assert.ok(list[0].size > 100);
    assert.ok(list[0].date instanceof Date);
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("maildir fetch returns the exact bytes and moves the message to cur/", async () => {
  const spool = await Deno.makeTempDir();
  try {
    const bytes = await raw(MARKER, "line one\r\n.line with dot\r\n");
    await deliverToMaildir(spool, ["bob@b.test"], bytes);
    await using box = await openMailbox(`maildir://${spool}`, { address: "bob@b.test" });
    const [m] = await box.list(MARKER);
    assert.deepEqual(await box.fetch(m.id, 1 << 20), bytes);
    const cur = await Array.fromAsync(Deno.readDir(join(maildirFor(spool, "bob@b.test"), "cur")));
    assert.equal(cur.length, 1);
    assert.ok(cur[0].name.endsWith(":2,S"));
    // the id stays stable after the move
    assert.deepEqual(await box.fetch(m.id, 1 << 20), bytes);
    assert.equal((await box.list(MARKER))[0].id, m.id);
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("maildir fetch refuses a message over the size cap", async () => {
  const spool = await Deno.makeTempDir();
  try {
    await deliverToMaildir(spool, ["bob@b.test"], await raw(MARKER, "x".repeat(5000)));
    await using box = await openMailbox(`maildir://${spool}`, { address: "bob@b.test" });
    const [m] = await box.list(MARKER);
    await assert.rejects(
      () => box.fetch(m.id, 1000),
      (e: unknown) => e instanceof MailError && e.code === "too_large",
    );
    await assert.rejects(
      () => box.fetch("nope", 1000),
      (e: unknown) => e instanceof MailError && e.code === "not_found",
    );
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("maildir deletes only on commit and leaves other mail alone", async () => {
  const spool = await Deno.makeTempDir();
  try {
    await deliverToMaildir(spool, ["bob@b.test"], await raw("personal"));
    await deliverToMaildir(spool, ["bob@b.test"], await raw(MARKER, "one"));
    await deliverToMaildir(spool, ["bob@b.test"], await raw(MARKER, "two"));
    await using box = await openMailbox(`maildir://${spool}`, { address: "bob@b.test" });
    const list = await box.list(MARKER);
    await box.delete([list[0].id]);
    assert.equal((await box.list(MARKER)).length, 2, "nothing removed before commit");
    await box.commit();
    assert.equal((await box.list(MARKER)).length, 1);
    assert.equal((await box.list("personal")).length, 1);
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("maildir watch yields at once and again when mail arrives", async () => {
  const spool = await Deno.makeTempDir();
  const ctl = new AbortController();
  try {
    await using box = await openMailbox(`maildir://${spool}`, { address: "bob@b.test" });
    const sender = openSender(`maildir://${spool}`);
    let wakeups = 0;
    const started = performance.now();
    for await (const _ of box.watch(ctl.signal)) {
      wakeups++;
      const list = await box.list(MARKER);
      if (list.length > 0) break;
      if (wakeups === 1) {
        setTimeout(
          () => sender.send({ from: "a@a.test", to: ["bob@b.test"], subject: MARKER, text: "hi" }),
          50,
        );
      }
      if (performance.now() - started > 10_000) throw new Error("no wake-up for new mail");
    }
    assert.ok(wakeups >= 2);
    await sender.close();
  } finally {
    ctl.abort();
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("maildir watch ends promptly when aborted", async () => {
  const spool = await Deno.makeTempDir();
  try {
    await using box = await openMailbox(`maildir://${spool}`, { address: "bob@b.test" });
    const ctl = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ctl.abort(), 100);
    for await (const _ of box.watch(ctl.signal)) { /* first yield, then waits */ }
    assert.ok(performance.now() - t0 < 2000);
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("maildir needs an address and refuses one that could escape the spool", async () => {
  await assert.rejects(() => openMailbox("maildir:///tmp/x"), MailError);
  assert.throws(() => maildirFor("/tmp/s", "../../etc@x"), MailError);
  assert.throws(() => maildirFor("/tmp/s", "a/b@x"), MailError);
  assert.throws(() => maildirFor("/tmp/s", "a\\b@x"), MailError);
});

Deno.test("a maildir folder is named by the lower-cased address, subaddress and IDN included", () => {
  assert.equal(maildirFor("/tmp/s", " Bob+Games@B.test "), "/tmp/s/bob+games@b.test");
  assert.equal(maildirFor("/tmp/s", "jörg@bücher.example"), "/tmp/s/jörg@bücher.example");
  assert.throws(() => maildirFor("/tmp/s", "bob"), MailError);
});

Deno.test("two processes delivering while a third reads lose and duplicate nothing", async () => {
  const spool = await Deno.makeTempDir();
  const worker = new URL("../fixtures/maildir_worker.ts", import.meta.url).pathname;
  const run = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", worker, ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  try {
    const reader = run("read", spool, "host@h.test", "60", "-");
    const [a, b] = await Promise.all([
      run("deliver", spool, "host@h.test", "30", "a"),
      run("deliver", spool, "host@h.test", "30", "b"),
    ]);
    assert.equal(a.code, 0, new TextDecoder().decode(a.stderr));
    assert.equal(b.code, 0, new TextDecoder().decode(b.stderr));
    const r = await reader;
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    const got: string[] = JSON.parse(new TextDecoder().decode(r.stdout));
    const want = [...Array(30).keys()].flatMap((i) => [`a-${i}`, `b-${i}`]).sort();
    assert.deepEqual(got, want);
    await using box = await openMailbox(`maildir://${spool}`, { address: "host@h.test" });
    assert.equal((await box.list(MARKER)).length, 0, "everything read was deleted");
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("maildir lists in delivery order, comparing the time parts of names as numbers", async () => {
  assert.ok(compareNames("1700000000.M5000P1.h", "1700000000.M40000P1.h") < 0);
  assert.ok(compareNames("1700000001.M1P1.h", "1700000000.M999999P1.h") > 0);
  const spool = await Deno.makeTempDir();
  try {
    for (let i = 0; i < 20; i++) await deliverToMaildir(spool, ["bob@b.test"], await raw(`${MARKER} ${i}`));
    await using box = await openMailbox(`maildir://${spool}`, { address: "bob@b.test" });
    assert.deepEqual(
      (await box.list(MARKER)).map((m) => m.subject),
      [...Array(20).keys()].map((i) => `${MARKER} ${i}`),
    );
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});
