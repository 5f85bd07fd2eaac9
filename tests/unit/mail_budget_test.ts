/** The daily mail budget: shares by priority, the rolling 24 hours, persistence, provider rate limits. */
import assert from "node:assert/strict";
import { BUDGET_WINDOW_MS, MailBudget, MemoryLedger, RATE_LIMIT_PAUSE_MS } from "../../src/mail/budget.ts";
import { budgetedSender } from "../../src/mail/budget_sender.ts";
import { MailError } from "../../src/mail/errors.ts";
import { FileLedger, SAVE_EVERY_MS } from "../../src/mail/ledger.ts";
import { isRateLimitAnswer } from "../../src/mail/rate_limit.ts";
import type { OutgoingMail, Sender, SentInfo } from "../../src/mail/smtp.ts";
import { toMailError } from "../../src/mail/smtp.ts";
import { parseAccount } from "../../src/mail/account.ts";

const NOW = Date.UTC(2026, 10, 27, 8);

function budget(limit = 100, ledger = new MemoryLedger()) {
  let now = NOW;
  const b = new MailBudget({ account: "Host@Game.test", limit, ledger, clock: () => now });
  return { b, ledger, tick: (ms: number) => now += ms };
}

Deno.test("near its budget a node refuses syncs first, then introductions, then replies, and keeps the last tenth for its own mail", () => {
  const { b } = budget(100);
  b.record(49);
  assert.ok(b.allows("sync"));
  b.record(1);
  assert.equal(b.allows("sync"), false, "half the budget spent: no more syncs");
  assert.ok(b.allows("intro"));
  b.record(20);
  assert.equal(b.allows("intro"), false, "70 spent: no more introductions");
  assert.ok(b.allows("reply"));
  b.record(20);
  assert.equal(b.allows("reply"), false, "90 spent: requests wait");
  assert.ok(b.allows("own"));
  b.record(10);
  assert.equal(b.allows("own"), false);
  assert.equal(b.sent(), 100);
  assert.throws(
    () => b.check("own"),
    (e: MailError) => e.code === "budget" && /--mail-budget/.test(e.message),
  );
});

Deno.test("mail older than 24 hours no longer counts against the budget", () => {
  const { b, tick } = budget(10);
  b.record(6);
  tick(BUDGET_WINDOW_MS / 2);
  b.record(4);
  assert.equal(b.allows("own"), false);
  tick(BUDGET_WINDOW_MS / 2 + 1);
  assert.equal(b.sent(), 4);
  assert.ok(b.allows("own"));
});

/** A ledger file in a scratch folder removed afterwards, and budgets counting in it (one per "process"). */
async function ledgerFile(name = "mail-sent.json") {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/${name}`;
  return {
    path,
    budget: (account: string, limit = 50, clock = () => NOW, ledgerClock?: () => number) =>
      new MailBudget({ account, limit, ledger: new FileLedger(path, ledgerClock), clock }),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("the mail count survives a restart, per account, in the data folder", async () => {
  await using f = await ledgerFile("data/mail-sent.json");
  f.budget("a@x.test").record(3);
  f.budget("b@x.test").record(1);
  assert.equal(f.budget("A@x.test").sent(), 3);
  assert.equal((Deno.statSync(f.path).mode ?? 0) & 0o777, 0o600);
});

Deno.test("a busy day keeps the ledger small: one entry per minute of mail, however many mails", async () => {
  await using f = await ledgerFile();
  let now = NOW;
  const b = f.budget("h@x.test", 1e9, () => now);
  for (let i = 0; i < 3000; i++) {
    b.record(1);
    now += 100; // ten mails a second for five minutes
  }
  assert.equal(b.sent(), 3000);
  b.flush();
  const file = JSON.parse(Deno.readTextFileSync(f.path));
  assert.equal(file.accounts["h@x.test"].sent.length, 5);
  assert.ok(Deno.statSync(f.path).size < 1000);
});

Deno.test("counts are written at most every SAVE_EVERY_MS, and all of them at flush()", async () => {
  await using f = await ledgerFile();
  let ms = 0;
  const onDisk = () => f.budget("h@x.test", 100).sent();
  using b = f.budget("h@x.test", 100, () => NOW, () => ms);
  b.record(1);
  assert.equal(onDisk(), 1, "the first count is written at once");
  ms += 10;
  b.record(1);
  b.record(1);
  assert.equal(b.sent(), 3, "this process sees its own counts at once");
  assert.equal(onDisk(), 1, "the next ones wait");
  ms += SAVE_EVERY_MS;
  b.record(1);
  assert.equal(onDisk(), 4, "written once SAVE_EVERY_MS passed");
  ms += 1;
  b.record(1);
  b.flush();
  assert.equal(onDisk(), 5, "flush() writes what was held");
});

Deno.test("a ledger written by another process is read again; one written before grouping still counts each mail", async () => {
  await using f = await ledgerFile();
  // The earlier format: one timestamp per recipient.
  Deno.writeTextFileSync(
    f.path,
    JSON.stringify({
      version: 1,
      accounts: { "a@x.test": { sent: [NOW - 1000, NOW - 500, NOW - 3 * 3600_000] } },
    }),
  );
  const mine = f.budget("a@x.test");
  assert.equal(mine.sent(), 3);
  const other = f.budget("a@x.test");
  other.record(2);
  assert.equal(mine.sent(), 5, "the other process's count is seen at once");
  mine.record(1);
  assert.equal(other.sent(), 6);
});

Deno.test("a provider's rate-limit answer stops sending for a while, longer each time, and a success resets it", () => {
  const { b, tick } = budget(100);
  const until = b.rateLimited();
  assert.equal(until, NOW + RATE_LIMIT_PAUSE_MS);
  assert.equal(b.allows("own"), false);
  assert.throws(
    () => b.check("own"),
    (e: MailError) => e.code === "rate_limited" && /limits sending/.test(e.message),
  );
  tick(RATE_LIMIT_PAUSE_MS + 1);
  assert.ok(b.allows("own"));
  assert.equal(b.rateLimited() - (NOW + RATE_LIMIT_PAUSE_MS + 1), 2 * RATE_LIMIT_PAUSE_MS, "doubled");
  tick(2 * RATE_LIMIT_PAUSE_MS + 1);
  b.record(1);
  assert.equal(
    b.rateLimited() - (NOW + 3 * RATE_LIMIT_PAUSE_MS + 2),
    RATE_LIMIT_PAUSE_MS,
    "reset by a success",
  );
});

class FakeSmtp implements Sender {
  readonly label = "fake";
  sent: OutgoingMail[] = [];
  answer?: MailError;
  send(mail: OutgoingMail): Promise<SentInfo> {
    if (this.answer) return Promise.reject(this.answer);
    this.sent.push(mail);
    return Promise.resolve({ messageId: "<1@fake>", response: "250 ok" });
  }
  close() {
    return Promise.resolve();
  }
  [Symbol.asyncDispose]() {
    return this.close();
  }
}

const mail = (priority: OutgoingMail["priority"], to = ["x@y.test"]): OutgoingMail => ({
  from: "host@game.test",
  to,
  subject: "m",
  text: "t",
  priority,
});

Deno.test("the budgeted sender counts each recipient and holds back what the budget refuses without contacting the server", async () => {
  const { b } = budget(10);
  const smtp = new FakeSmtp();
  const sender = budgetedSender(smtp, b);
  await sender.send(mail("own", ["a@x.test", "b@x.test"]));
  await sender.send(mail("sync"));
  assert.equal(b.sent(), 3);
  b.record(2);
  await assert.rejects(sender.send(mail("sync")), (e: MailError) => e.code === "budget");
  assert.equal(smtp.sent.length, 2);
});

Deno.test("a rate-limit answer pauses the sender and says in one sentence that the provider limits sending", async () => {
  const { b } = budget(100);
  const smtp = new FakeSmtp();
  smtp.answer = new MailError("limited", "rate_limited", {
    response: "550 5.4.5 Daily user sending limit exceeded",
  });
  const sender = budgetedSender(smtp, b);
  await assert.rejects(sender.send(mail("reply")), (e: MailError) =>
    e.code === "rate_limited" &&
    /^The mail provider limits sending from host@game\.test \(550 5\.4\.5 [^.]*\); mailmeet sends again after \d\d:\d\d UTC\.$/
      .test(e.message));
  smtp.answer = undefined;
  await assert.rejects(sender.send(mail("own")), (e: MailError) => e.code === "rate_limited");
  assert.equal(smtp.sent.length, 0, "no mail while paused");
});

Deno.test("providers' rate-limit answers are recognised, other refusals are not", () => {
  const limited: [number, string][] = [
    [550, "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits"],
    [421, "421-4.7.0 Try again later, closing connection. (EHLO)"],
    [421, "421 4.7.28 Our system has detected an unusual rate of unsolicited mail"],
    [554, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"],
    [451, "451 4.7.500 Server busy. Please try again later"],
    [421, "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume"],
    [421, "421 Too many messages, try again later"],
  ];
  for (const [code, text] of limited) assert.ok(isRateLimitAnswer(code, text), text);
  const other: [number, string][] = [
    [454, "454 4.7.0 Temporary authentication failure"],
    [450, "450 4.2.0 <bob@isp.test>: Recipient address rejected: Greylisted"],
    [550, "550 5.1.1 <nobody@isp.test>: Recipient address rejected: User unknown"],
    [554, "554 5.2.0 mailbox unavailable"],
    [535, "535 5.7.8 Error: authentication failed"],
  ];
  for (const [code, text] of other) assert.equal(isRateLimitAnswer(code, text), false, text);
});

Deno.test("an SMTP rate-limit answer becomes a rate_limited MailError, not a retried temporary failure", () => {
  const account = parseAccount("smtps://bob%40gmail.test:secret@127.0.0.1:465");
  const e = toMailError(
    Object.assign(new Error("Message failed: 550 5.4.5 Daily user sending limit exceeded"), {
      code: "EMESSAGE",
      responseCode: 550,
      response: "550 5.4.5 Daily user sending limit exceeded",
    }),
    account,
  );
  assert.equal(e.code, "rate_limited");
  assert.match(e.message, /limits sending/);
});

Deno.test("mail on its way counts against the budget: two sent at once do not both take the last room", async () => {
  const { b } = budget(10);
  b.record(7); // replies may fill 9
  const smtp = new FakeSmtp();
  const sender = budgetedSender(smtp, b);
  const first = sender.send(mail("reply"));
  assert.equal(b.allows("reply"), true, "one more still fits beside the one on its way");
  const second = sender.send(mail("reply"));
  await assert.rejects(sender.send(mail("reply")), (e: MailError) => e.code === "budget");
  await Promise.all([first, second]);
  assert.equal(b.sent(), 9);
  assert.equal(b.allows("reply"), false);
  smtp.answer = new MailError("451 try later", "protocol");
  await assert.rejects(sender.send(mail("own")));
  assert.equal(b.allows("own"), true, "a mail the server refused is no longer on its way");
});
