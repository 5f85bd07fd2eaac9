/** The embedded maildir spool and Dovecot serve the same folders: mail crosses both ways. */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { openMaildirMailbox } from "../../src/mail/maildir.ts";
import { openMailbox } from "../../src/mail/open.ts";
import { openSender } from "../../src/mail/smtp.ts";
import { mailStack } from "../helpers/mailstack.ts";

const MARKER = "mailmeet rendezvous";

Deno.test("mail written by the maildir transport is read by Dovecot over IMAP, then deleted there", async () => {
  await using stack = await mailStack();
  const to = stack.freshAddress("spoolreader", "isp-b.test");
  await using sender = openSender(`maildir://${stack.spool}`);
  await sender.send({ from: "x@isp-a.test", to: [to], subject: MARKER, text: "via the spool" });
  await using box = await openMailbox(stack.url("imap", to), { caCerts: [stack.caPem] });
  const list = await box.list(MARKER);
  assert.equal(list.length, 1);
  const raw = new TextDecoder().decode(await box.fetch(list[0].id, 1 << 20));
  assert.match(raw, /via the spool/);
  await box.delete([list[0].id]);
  await box.commit();
  assert.equal((await box.list(MARKER)).length, 0);
  // and Dovecot can still deliver into the folder we created
  await stack.deliverRaw(to, `From: a@isp-a.test\r\nTo: ${to}\r\nSubject: ${MARKER} 2\r\n\r\nafter\r\n`);
  assert.equal((await box.list(MARKER)).length, 1, "a list right after delivery sees the new mail");
});

Deno.test("mail delivered by Postfix into Dovecot's folder is read by the maildir transport", async () => {
  await using stack = await mailStack();
  const to = stack.freshAddress("spoolwriter", "isp-a.test");
  await stack.deliverRaw(
    to,
    `From: a@isp-b.test\r\nTo: ${to}\r\nSubject: ${MARKER}\r\n\r\nthrough postfix\r\n`,
  );
  await using box = await openMaildirMailbox(parseAccount(`maildir://${stack.spool}`), { address: to });
  const list = await box.list(MARKER);
  assert.equal(list.length, 1);
  assert.match(new TextDecoder().decode(await box.fetch(list[0].id, 1 << 20)), /through postfix/);
  await box.delete([list[0].id]);
  await box.commit();
  assert.equal((await box.list(MARKER)).length, 0);
});
