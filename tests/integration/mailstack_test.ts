/**
 * The real mail stack that the integration and end-to-end tests stand on: every port answers, TLS
 * verifies only against the private CA, submission insists on STARTTLS before AUTH, mail reaches the
 * recipient's Maildir (and Dovecot serves it over IMAP and POP3), other domains are refused, and a
 * Dovecot restart leaves a working server behind.
 */
import assert from "node:assert/strict";
// @ts-types="@types/nodemailer"
import nodemailer from "nodemailer";
import { type MailStack, mailStack } from "../helpers/mailstack.ts";

const REPLY_TIMEOUT_MS = 10_000;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A line-oriented client over a TCP or TLS connection that can be upgraded in place (STARTTLS). */
class LineConn {
  #buf = "";
  constructor(public conn: Deno.Conn | Deno.TlsConn) {}

  static async open(
    stack: MailStack,
    port: number,
    tls: "none" | "ca" | "no-ca" = "none",
  ): Promise<LineConn> {
    if (tls === "none") return new LineConn(await Deno.connect({ hostname: stack.host, port }));
    const conn = await Deno.connectTls({
      hostname: stack.host,
      port,
      ...(tls === "ca" ? { caCerts: [stack.caPem] } : {}),
    });
    try {
      await conn.handshake();
    } catch (e) {
      conn.close();
      throw e;
    }
    return new LineConn(conn);
  }

  async line(): Promise<string> {
    const chunk = new Uint8Array(16 * 1024);
    for (;;) {
      const nl = this.#buf.indexOf("\r\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 2);
        return line;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.conn.read(chunk),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("No reply within the timeout")), REPLY_TIMEOUT_MS);
        }),
      ]).finally(() => clearTimeout(timer));
      if (n === null) throw new Deno.errors.UnexpectedEof("The server closed the connection");
      this.#buf += dec.decode(chunk.subarray(0, n), { stream: true });
    }
  }

  /** Reads lines until one matches `done`; returns them all. */
  async until(done: (line: string) => boolean): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const l = await this.line();
      lines.push(l);
      if (done(l)) return lines;
    }
  }

  /** An SMTP reply: "250-…" lines up to "250 …". */
  async smtp(): Promise<{ code: number; lines: string[] }> {
    const lines = await this.until((l) => l.length < 4 || l[3] !== "-");
    return { code: Number(lines.at(-1)!.slice(0, 3)), lines };
  }

  async send(text: string): Promise<void> {
    await this.conn.write(enc.encode(text + "\r\n"));
  }

  async startTls(stack: MailStack): Promise<void> {
    assert.deepEqual(this.#buf, "", "no bytes may be buffered before the TLS upgrade");
    const tls = await Deno.startTls(this.conn as Deno.TcpConn, {
      hostname: stack.host,
      caCerts: [stack.caPem],
    });
    await tls.handshake();
    this.conn = tls;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

const plain = (user: string, pass: string) => btoa(`\0${user}\0${pass}`);

function transport(stack: MailStack, kind: "submission" | "smtps", user: string) {
  return nodemailer.createTransport({
    host: stack.host,
    port: stack.ports[kind],
    secure: kind === "smtps",
    requireTLS: kind === "submission",
    auth: { user, pass: stack.password },
    tls: { ca: stack.caPem, servername: "localhost" },
  });
}

async function imapLogin(stack: MailStack, address: string): Promise<LineConn> {
  const c = await LineConn.open(stack, stack.ports.imaps, "ca");
  assert.match(await c.line(), /^\* OK/);
  await c.send(`a1 LOGIN "${address}" "${stack.password}"`);
  assert.match((await c.until((l) => l.startsWith("a1 "))).at(-1)!, /^a1 OK/);
  return c;
}

Deno.test("every port of the mail stack answers with its protocol's greeting", async () => {
  await using stack = await mailStack();
  const expect: [keyof MailStack["ports"], "none" | "ca", RegExp][] = [
    ["smtp", "none", /^220 /],
    ["submission", "none", /^220 /],
    ["smtps", "ca", /^220 /],
    ["imap", "none", /^\* OK .*STARTTLS/],
    ["imaps", "ca", /^\* OK /],
    ["pop3", "none", /^\+OK /],
    ["pop3s", "ca", /^\+OK /],
  ];
  for (const [kind, tls, greeting] of expect) {
    using c = await LineConn.open(stack, stack.ports[kind], tls);
    assert.match(await c.line(), greeting, `greeting on the ${kind} port ${stack.ports[kind]}`);
  }
});

Deno.test("implicit-TLS ports verify against the private CA and are refused without it", async () => {
  await using stack = await mailStack();
  for (const port of [stack.ports.imaps, stack.ports.pop3s, stack.ports.smtps]) {
    (await LineConn.open(stack, port, "ca")).close();
    await assert.rejects(() => LineConn.open(stack, port, "no-ca"), `port ${port} without the CA`);
  }
});

Deno.test("STARTTLS on SMTP, IMAP and POP3 upgrades to a certificate signed by the private CA", async () => {
  await using stack = await mailStack();
  for (const port of [stack.ports.smtp, stack.ports.submission]) {
    using c = await LineConn.open(stack, port);
    assert.deepEqual((await c.smtp()).code, 220);
    await c.send("EHLO test.client");
    assert.ok((await c.smtp()).lines.some((l) => l.slice(4) === "STARTTLS"), `STARTTLS offered on ${port}`);
    await c.send("STARTTLS");
    assert.deepEqual((await c.smtp()).code, 220);
    await c.startTls(stack);
    await c.send("EHLO test.client");
    assert.deepEqual((await c.smtp()).code, 250);
  }
  {
    using c = await LineConn.open(stack, stack.ports.imap);
    await c.line();
    await c.send("a1 STARTTLS");
    assert.match((await c.until((l) => l.startsWith("a1 "))).at(-1)!, /^a1 OK/);
    await c.startTls(stack);
    await c.send("a2 CAPABILITY");
    assert.match((await c.until((l) => l.startsWith("a2 "))).at(-1)!, /^a2 OK/);
  }
  {
    using c = await LineConn.open(stack, stack.ports.pop3);
    await c.line();
    await c.send("CAPA");
    assert.ok((await c.until((l) => l === ".")).includes("STLS"), "POP3 offers STLS");
    await c.send("STLS");
    assert.match(await c.line(), /^\+OK/);
    await c.startTls(stack);
    await c.send("CAPA");
    assert.match(await c.line(), /^\+OK/);
  }
});

Deno.test("submission refuses AUTH before STARTTLS and accepts it after", async () => {
  await using stack = await mailStack();
  const user = stack.freshAddress("auth");
  using c = await LineConn.open(stack, stack.ports.submission);
  await c.smtp();
  await c.send("EHLO test.client");
  assert.ok(!(await c.smtp()).lines.some((l) => /^250.AUTH/.test(l)), "no AUTH offered in clear text");
  await c.send(`AUTH PLAIN ${plain(user, stack.password)}`);
  const refused = await c.smtp();
  assert.ok(refused.code >= 500, `AUTH before STARTTLS answered ${refused.lines.join(" | ")}`);
  await c.send("STARTTLS");
  assert.deepEqual((await c.smtp()).code, 220);
  await c.startTls(stack);
  await c.send("EHLO test.client");
  assert.ok(
    (await c.smtp()).lines.some((l) => /^250.AUTH\b.*PLAIN/.test(l)),
    "AUTH PLAIN offered after STARTTLS",
  );
  await c.send(`AUTH PLAIN ${plain(user, "wrong password")}`);
  assert.deepEqual((await c.smtp()).code, 535);
  await c.send(`AUTH PLAIN ${plain(user, stack.password)}`);
  assert.deepEqual((await c.smtp()).code, 235);
});

Deno.test("submission refuses unauthenticated mail even after STARTTLS", async () => {
  await using stack = await mailStack();
  using c = await LineConn.open(stack, stack.ports.submission);
  await c.smtp();
  await c.send("EHLO test.client");
  await c.smtp();
  await c.send("STARTTLS");
  await c.smtp();
  await c.startTls(stack);
  await c.send("EHLO test.client");
  await c.smtp();
  await c.send(`MAIL FROM:<${stack.freshAddress("anon")}>`);
  await c.smtp();
  await c.send(`RCPT TO:<${stack.freshAddress("victim", "isp-b.test")}>`);
  const r = await c.smtp();
  assert.ok(r.code >= 500, `RCPT without AUTH answered ${r.lines.join(" | ")}`);
});

Deno.test("mail sent through submission and smtps with AUTH lands in the recipient's maildir", async () => {
  await using stack = await mailStack();
  const from = stack.freshAddress("alice", "isp-a.test");
  const to = stack.freshAddress("bob", "isp-b.test");
  for (const kind of ["submission", "smtps"] as const) {
    const t = transport(stack, kind, from);
    try {
      const info = await t.sendMail({ from, to, subject: `hello over ${kind}`, text: `sent over ${kind}` });
      assert.deepEqual(info.accepted, [to]);
    } finally {
      t.close();
    }
  }
  await stack.waitForMessages(to, 2);
  const texts = (await stack.rawMessages(to)).map((m) => dec.decode(m));
  assert.deepEqual(texts.length, 2);
  for (const kind of ["submission", "smtps"]) {
    assert.ok(texts.some((t) => t.includes(`Subject: hello over ${kind}`)), `the ${kind} mail arrived`);
  }
  // Dovecot files it under the lower-cased full address, where mailmeet's maildir: transport looks.
  await Deno.stat(`${stack.spool}/${to.toLowerCase()}/cur`);
});

Deno.test("the MX port takes mail for the three domains without AUTH and refuses other domains", async () => {
  await using stack = await mailStack();
  for (const domain of stack.domains) {
    const to = stack.freshAddress("Carol", domain);
    await stack.deliverRaw(
      to,
      `From: x@example.org\r\nTo: ${to}\r\nSubject: seed\r\n\r\n.dot line\r\nbody\r\n`,
    );
    const [msg] = await stack.rawMessages(to);
    assert.ok(dec.decode(msg).includes("\r\n.dot line\r\nbody"), "dot-stuffing undone by the server");
  }
  using c = await LineConn.open(stack, stack.ports.smtp);
  await c.smtp();
  await c.send("EHLO test.client");
  await c.smtp();
  await c.send("MAIL FROM:<x@example.org>");
  assert.deepEqual((await c.smtp()).code, 250);
  for (const rcpt of ["someone@example.com", "bob@isp-c.test", "bob@mail.test"]) {
    await c.send(`RCPT TO:<${rcpt}>`);
    const r = await c.smtp();
    assert.ok(r.code >= 500, `RCPT ${rcpt} answered ${r.lines.join(" | ")}`);
  }
  await assert.rejects(() => stack.deliverRaw("nobody@example.com", "Subject: no\r\n\r\nno\r\n"), /RCPT/);
});

Deno.test("authenticated users cannot relay to other domains either", async () => {
  await using stack = await mailStack();
  const from = stack.freshAddress("dave");
  const t = transport(stack, "submission", from);
  try {
    await assert.rejects(() =>
      t.sendMail({ from, to: "someone@example.com", subject: "relay?", text: "no" })
    );
  } finally {
    t.close();
  }
});

Deno.test("Dovecot serves delivered mail over IMAP (with IDLE) and POP3", async () => {
  await using stack = await mailStack();
  const to = stack.freshAddress("reader", "game.test");
  await stack.deliverRaw(to, `Subject: first\r\n\r\none\r\n`);

  using imap = await imapLogin(stack, to);
  await imap.send("a2 SELECT INBOX");
  const selected = await imap.until((l) => l.startsWith("a2 "));
  assert.ok(selected.includes("* 1 EXISTS"), selected.join("\n"));
  await imap.send("a3 IDLE");
  assert.match(await imap.line(), /^\+ /);
  const t0 = performance.now();
  await stack.deliverRaw(to, `Subject: second\r\n\r\ntwo\r\n`);
  await imap.until((l) => l === "* 2 EXISTS");
  const idleMs = performance.now() - t0;
  assert.ok(idleMs < 3000, `IDLE reported the new mail after ${idleMs.toFixed(0)} ms`);
  await imap.send("DONE");
  await imap.until((l) => l.startsWith("a3 "));

  using pop = await LineConn.open(stack, stack.ports.pop3s, "ca");
  assert.match(await pop.line(), /^\+OK/);
  await pop.send(`USER ${to}`);
  assert.match(await pop.line(), /^\+OK/);
  await pop.send(`PASS ${stack.password}`);
  assert.match(await pop.line(), /^\+OK/);
  await pop.send("STAT");
  assert.match(await pop.line(), /^\+OK 2 /);
});

Deno.test("restartDovecot() drops IMAP sessions and brings Dovecot back with the same mail", async () => {
  await using stack = await mailStack();
  const to = stack.freshAddress("restart");
  await stack.deliverRaw(to, `Subject: before\r\n\r\nbefore\r\n`);
  using before = await imapLogin(stack, to);

  await stack.restartDovecot();
  await assert.rejects(async () => {
    await before.send("a2 NOOP");
    await before.until((l) => l.startsWith("a2 "));
  });

  using after = await imapLogin(stack, to);
  await after.send("a2 SELECT INBOX");
  assert.ok((await after.until((l) => l.startsWith("a2 "))).includes("* 1 EXISTS"));
  await stack.deliverRaw(to, `Subject: after\r\n\r\nafter\r\n`);
  assert.deepEqual((await stack.rawMessages(to)).length, 2);
});

Deno.test("freshAddress never repeats and url() encodes the credentials", async () => {
  await using stack = await mailStack();
  const many = new Set(Array.from({ length: 1000 }, () => stack.freshAddress("x")));
  assert.deepEqual(many.size, 1000);
  const a = stack.freshAddress("alice", "isp-b.test");
  assert.match(a, /^t-[0-9a-z]+-[0-9a-z]+-alice@isp-b\.test$/);
  const u = new URL(stack.url("imap", a));
  assert.deepEqual(decodeURIComponent(u.username), a);
  assert.deepEqual(decodeURIComponent(u.password), stack.password);
  assert.deepEqual(u.port, "10143");
  assert.deepEqual(u.pathname, "/INBOX");
  assert.deepEqual(stack.url("smtp", a), "smtp://127.0.0.1:10025?tls=none");
  assert.match(stack.url("submission", a), /^smtp:\/\/.*%40isp-b\.test:mailmeet-test@127\.0\.0\.1:10587$/);
  assert.match(stack.url("smtps", a), /:10465$/);
  assert.match(stack.url("imaps", a), /^imaps:.*:10993\/INBOX$/);
  assert.match(stack.url("pop3", a), /^pop3:.*:10110$/);
  assert.match(stack.url("pop3s", a), /^pop3s:.*:10995$/);
});
