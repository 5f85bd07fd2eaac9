/**
 * The junk folder on the real Dovecot: marker mail the provider filed there is seen and deleted by
 * an inbox reader, and a push there wakes it; the other mail in the folder stays untouched.
 */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { openImapMailbox } from "../../src/mail/imap.ts";
import { ImapClient } from "../../src/mail/imap/client.ts";
import { stringArg } from "../../src/mail/imap/encode.ts";
import { mailStack } from "../helpers/mailstack.ts";

function message(to: string, subject: string): Uint8Array {
  return new TextEncoder().encode(
    `From: tester@isp-a.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: ${new Date().toUTCString()}\r\n` +
      `Message-ID: <${crypto.randomUUID()}@isp-a.test>\r\n\r\nhello\r\n`,
  );
}

Deno.test("imap: marker mail in the Junk folder is listed and deleted with the inbox's, a push there wakes the reader, and other junk stays", async () => {
  await using stack = await mailStack();
  const me = stack.freshAddress("junk");
  const account = parseAccount(stack.url("imap", me));
  const opts = {
    caCerts: [stack.caPem],
    connectTimeoutMs: 10_000,
    greetingTimeoutMs: 10_000,
    commandTimeoutMs: 10_000,
  };
  // What a provider's spam filter does: a Junk folder, and mail filed into it.
  const filer = await ImapClient.connect(account, opts);
  try {
    await filer.command(["CREATE ", stringArg("Junk")]);
    await filer.command(["APPEND ", stringArg("Junk"), " ", stringArg(message(me, "[mm-junk] request"))]);
    await filer.command(["APPEND ", stringArg("Junk"), " ", stringArg(message(me, "You have won"))]);
    await stack.deliverRaw(me, new TextDecoder().decode(message(me, "[mm-junk] in the inbox")));
    await stack.waitForMessages(me, 1);

    const log: string[] = [];
    await using mb = await openImapMailbox(account, {
      caCerts: [stack.caPem],
      pollIntervalMs: 600_000,
      log: (l) => log.push(l),
    });
    assert.ok(log.some((l) => /junk folder "Junk"/.test(l)), log.join("\n"));
    const listed = await mb.list("[mm-junk]");
    assert.deepEqual(listed.map((m) => [m.subject, m.junk]).sort(), [
      ["[mm-junk] in the inbox", undefined],
      ["[mm-junk] request", "Junk"],
    ]);
    const inJunk = listed.find((m) => m.junk)!;
    assert.match(new TextDecoder().decode(await mb.fetch(inJunk.id, 100_000)), /\[mm-junk\] request/);

    const ctl = new AbortController();
    const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
    try {
      await it.next();
      await it.next(); // each folder's watch starts with a yield
      const woke = it.next();
      await filer.command(["APPEND ", stringArg("Junk"), " ", stringArg(message(me, "[mm-junk] later"))]);
      assert.equal((await woke).done, false, "a push in the junk folder wakes the reader");
    } finally {
      ctl.abort();
      await it.return?.();
    }
    const now = await mb.list("[mm-junk]");
    assert.equal(now.filter((m) => m.junk).length, 2);
    await mb.delete(now.map((m) => m.id));
    await mb.commit();
    assert.deepEqual(await mb.list("[mm-junk]"), []);
    const left = await filer.command(["SELECT ", stringArg("Junk")]);
    assert.ok(
      left.untagged.some((u) => u.kind === "data" && u.name === "EXISTS" && u.number === 1),
      "the other junk stays",
    );
  } finally {
    await filer.logout(5_000);
  }
});
