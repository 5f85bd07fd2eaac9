/**
 * Client behaviour against a small scripted IMAP server in this process (127.0.0.1, plain TCP):
 * what a real Dovecot cannot be made to do on demand — no IDLE, no UIDPLUS, BYE in the middle of
 * IDLE, chatter between tagged responses, silence, lies about sizes.
 */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { MailError } from "../../src/mail/errors.ts";
import { LineReader } from "../../src/mail/line_reader.ts";
import type { Mailbox } from "../../src/mail/mailbox.ts";
import { parseMail } from "../../src/mail/parse.ts";
import { openImapMailbox } from "../../src/mail/imap.ts";
import type { ImapTuning } from "../../src/mail/imap/mailbox.ts";
import { literalAnnouncement } from "../../src/mail/imap/framing.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const latin1 = (b: Uint8Array) => new TextDecoder("latin1").decode(b);
const USER = "bob@isp-b.test";
const PASSWORD = 'pa"ss\\wörd-s3cret';

/* ---------- the fake server ---------- */

interface Message {
  uid: number;
  raw: Uint8Array;
  flags: Set<string>;
  internalDate: string;
}

type Verdict = "silent" | "handled" | void;

interface FakeOptions {
  /** Capabilities after login and in the greeting. */
  caps?: string;
  /** Capabilities before login (defaults to `caps`). */
  preauthCaps?: string;
  /** Put [CAPABILITY …] in the greeting. */
  greetingCaps?: boolean;
  greeting?: string;
  password?: string;
  /** Echo what the client sent in the NO to a failed login (a server that leaks; we must scrub). */
  echoCredentials?: boolean;
  /** Before each tagged response, send chatter a server may send at any time. */
  noise?: boolean;
  /** RFC822.SIZE reported smaller than the message (a lying server). */
  lieAboutSize?: boolean;
  /** Runs before a command is handled; "silent" = never answer it, "handled" = the hook answered. */
  hook?: (s: Session, tag: string, line: string) => Verdict | Promise<Verdict>;
}

class Session {
  known = 0;
  idleTag?: string;
  closed = false;
  literals: Uint8Array[] = [];
  readonly #reader: LineReader;

  constructor(readonly server: FakeImap, readonly conn: Deno.Conn) {
    this.#reader = new LineReader(conn);
  }

  async send(data: string | Uint8Array): Promise<void> {
    if (this.closed) return;
    const bytes = typeof data === "string" ? enc(data) : data;
    try {
      let off = 0;
      while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
    } catch {
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch {
      // gone
    }
  }

  /** One command line with its literals inlined as latin1 text (literals also kept in `literals`). */
  async readCommand(): Promise<string | null> {
    this.literals = [];
    let text = "";
    for (;;) {
      const line = await this.#reader.readLineBytes();
      if (line === null) return null;
      text += latin1(line);
      const n = literalAnnouncement(line);
      if (n === undefined) return text;
      if (line[line.length - 2] !== 0x2b) await this.send("+ go ahead\r\n"); // synchronizing literal
      const lit = await this.#reader.readN(n);
      this.literals.push(lit);
      text += "\r\n" + latin1(lit);
    }
  }

  async run(): Promise<void> {
    const s = this.server;
    const caps = s.opts.greetingCaps === false ? "" : `[CAPABILITY ${s.preauthCaps}] `;
    await this.send(s.opts.greeting ?? `* OK ${caps}fake IMAP ready\r\n`);
    try {
      for (;;) {
        const line = await this.readCommand();
        if (line === null) break;
        s.commands.push(line);
        s.commandSeen(line);
        if (this.idleTag) {
          if (line.toUpperCase() === "DONE") {
            const tag = this.idleTag;
            this.idleTag = undefined;
            await this.send(`${tag} OK Idle completed\r\n`);
          } else {
            await this.send("* BAD expected DONE\r\n");
          }
          continue;
        }
        const m = /^(\S+) (.*)$/s.exec(line);
        if (!m) {
          await this.send("* BAD no tag\r\n");
          continue;
        }
        const [, tag, rest] = m;
        const verdict = await s.opts.hook?.(this, tag, rest);
        if (verdict === "silent" || verdict === "handled") continue;
        await this.handle(tag, rest);
        if (this.closed) break;
      }
    } catch {
      // the client went away mid-command
    } finally {
      this.close();
    }
  }

  async handle(tag: string, rest: string): Promise<void> {
    const s = this.server;
    const upper = rest.toUpperCase();
    const ok = async (text = "done") => {
      if (s.opts.noise) {
        await this.send('* OK Still here\r\n* 0 RECENT\r\n* 1 FETCH (FLAGS (\\Seen))\r\n* XNOISE ("a) b\r\n');
      }
      await this.reportExists();
      await this.send(`${tag} OK ${text}\r\n`);
    };
    if (upper === "CAPABILITY") {
      await this.send(`* CAPABILITY ${this.authed ? s.caps : s.preauthCaps}\r\n`);
      return ok();
    }
    if (upper.startsWith("LOGIN ") || upper.startsWith("AUTHENTICATE PLAIN")) {
      let pass: string | undefined;
      let shown = rest;
      if (upper.startsWith("LOGIN ")) {
        const last = this.literals.at(-1);
        pass = last ? new TextDecoder().decode(last) : unquoteLast(rest);
      } else {
        let b64 = rest.slice("AUTHENTICATE PLAIN".length).trim();
        if (!b64) {
          await this.send("+ \r\n");
          b64 = (await this.readCommand()) ?? "";
          shown = b64;
        }
        try {
          const decoded = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
          pass = decoded.split("\0")[2];
        } catch {
          pass = undefined;
        }
      }
      if (pass !== s.password) {
        const echo = s.opts.echoCredentials
          ? ` (you sent ${shown.replace(/\r\n/g, " ")}; password ${pass})`
          : "";
        return this.send(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed${echo}.\r\n`);
      }
      this.authed = true;
      return this.send(`${tag} OK [CAPABILITY ${s.caps}] Logged in\r\n`);
    }
    if (upper === "LOGOUT") {
      await this.send(`* BYE Logging out\r\n${tag} OK Logout completed.\r\n`);
      return this.close();
    }
    if (!this.authed) return this.send(`${tag} BAD log in first\r\n`);
    if (upper.startsWith("SELECT ")) {
      this.known = s.messages.length;
      await this.send(
        `* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* ${this.known} EXISTS\r\n* 0 RECENT\r\n` +
          `* OK [UIDVALIDITY ${s.uidValidity}] UIDs valid\r\n* OK [UIDNEXT ${s.uidNext}] Predicted next UID\r\n`,
      );
      return this.send(`${tag} OK [READ-WRITE] Select completed.\r\n`);
    }
    if (upper === "NOOP") return ok();
    if (upper === "IDLE") {
      if (!s.caps.includes("IDLE")) return this.send(`${tag} BAD unknown command\r\n`);
      this.idleTag = tag;
      await this.send("+ idling\r\n");
      await this.reportExists();
      s.idleStarted();
      return;
    }
    if (upper.startsWith("UID SEARCH ")) {
      const marker = this.literals.length ? new TextDecoder().decode(this.literals[0]) : unquoteLast(rest);
      const hits: number[] = [];
      for (const msg of s.messages) {
        const subject = (await parseMail(msg.raw)).subject;
        if (subject.toLowerCase().includes(marker.toLowerCase())) hits.push(msg.uid);
      }
      await this.send(`* SEARCH${hits.map((u) => ` ${u}`).join("")}\r\n`);
      s.afterSearch?.();
      return ok();
    }
    if (upper.startsWith("UID FETCH ")) {
      const [, set, items] = /^UID FETCH (\S+) (.*)$/i.exec(rest)!;
      const uids = parseSet(set, s.uidNext);
      for (const [i, msg] of s.messages.entries()) {
        if (!uids.has(msg.uid)) continue;
        const parts: (string | Uint8Array)[] = [`* ${i + 1} FETCH (UID ${msg.uid}`];
        if (/RFC822\.SIZE/i.test(items)) {
          parts.push(` RFC822.SIZE ${s.opts.lieAboutSize ? 10 : msg.raw.length}`);
        }
        if (/INTERNALDATE/i.test(items)) parts.push(` INTERNALDATE "${msg.internalDate}"`);
        if (/HEADER\.FIELDS/i.test(items)) {
          const head = headerFields(msg.raw, ["subject", "date"]);
          parts.push(` BODY[HEADER.FIELDS (SUBJECT DATE)] {${head.length}}\r\n`, head);
        }
        if (/BODY\.PEEK\[\]/i.test(items)) parts.push(` BODY[] {${msg.raw.length}}\r\n`, msg.raw);
        parts.push(")\r\n");
        for (const p of parts) await this.send(p);
      }
      return ok();
    }
    if (upper.startsWith("UID STORE ")) {
      const [, set] = /^UID STORE (\S+) /i.exec(rest)!;
      const uids = parseSet(set, s.uidNext);
      for (const msg of s.messages) if (uids.has(msg.uid)) msg.flags.add("\\Deleted");
      return ok();
    }
    if (upper === "EXPUNGE" || upper.startsWith("UID EXPUNGE ")) {
      if (upper !== "EXPUNGE" && !s.caps.includes("UIDPLUS")) {
        return this.send(`${tag} BAD unknown command\r\n`);
      }
      const only = upper === "EXPUNGE" ? undefined : parseSet(rest.split(" ")[2], s.uidNext);
      for (let i = s.messages.length - 1; i >= 0; i--) {
        const msg = s.messages[i];
        if (!msg.flags.has("\\Deleted") || (only && !only.has(msg.uid))) continue;
        s.messages.splice(i, 1);
        this.known--;
        await this.send(`* ${i + 1} EXPUNGE\r\n`);
      }
      return ok();
    }
    return this.send(`${tag} BAD unknown command\r\n`);
  }

  authed = false;

  async reportExists(): Promise<void> {
    if (this.server.messages.length > this.known) {
      this.known = this.server.messages.length;
      await this.send(`* ${this.known} EXISTS\r\n`);
    }
  }
}

function unquoteLast(text: string): string {
  const m = /"((?:[^"\\]|\\.)*)"\s*$/.exec(text);
  return m
    ? new TextDecoder().decode(Uint8Array.from(m[1].replace(/\\(.)/g, "$1"), (c) => c.charCodeAt(0)))
    : "";
}

function parseSet(set: string, uidNext: number): Set<number> {
  const out = new Set<number>();
  for (const part of set.split(",")) {
    const [a, b] = part.split(":");
    const lo = a === "*" ? uidNext - 1 : Number(a);
    const hi = b === undefined ? lo : b === "*" ? uidNext - 1 : Number(b);
    for (let u = Math.min(lo, hi); u <= Math.max(lo, hi); u++) out.add(u);
  }
  return out;
}

/** The named header lines (with folding) and the blank line, as HEADER.FIELDS returns them. */
function headerFields(raw: Uint8Array, names: string[]): Uint8Array {
  const text = latin1(raw);
  const head = text.split(/\r?\n\r?\n/)[0];
  const lines = head.split(/\r?\n(?![ \t])/).filter((l) => names.includes(l.split(":")[0].toLowerCase()));
  return Uint8Array.from(lines.map((l) => l + "\r\n").join("") + "\r\n", (c) => c.charCodeAt(0));
}

class FakeImap implements AsyncDisposable {
  readonly commands: string[] = [];
  readonly messages: Message[] = [];
  uidValidity = 1234;
  uidNext = 1;
  readonly sessions = new Set<Session>();
  readonly caps: string;
  readonly preauthCaps: string;
  readonly password: string;
  afterSearch?: () => void;
  #listener: Deno.Listener;
  #accepting: Promise<void>;
  #running = new Set<Promise<void>>();
  #idleWaiters: (() => void)[] = [];
  #commandWaiters: { suffix: string; resolve: () => void }[] = [];

  constructor(readonly opts: FakeOptions = {}) {
    this.caps = opts.caps ?? "IMAP4rev1 AUTH=PLAIN SASL-IR IDLE UIDPLUS";
    this.preauthCaps = opts.preauthCaps ?? this.caps;
    this.password = opts.password ?? PASSWORD;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  url(extra = "tls=none", password = this.password): string {
    return `imap://${encodeURIComponent(USER)}:${
      encodeURIComponent(password)
    }@127.0.0.1:${this.port}/INBOX?${extra}`;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const s = new Session(this, conn);
        this.sessions.add(s);
        const p = s.run().finally(() => {
          this.sessions.delete(s);
          this.#running.delete(p);
        });
        this.#running.add(p);
      }
    } catch {
      // listener closed
    }
  }

  /** Adds a message; sessions in IDLE hear about it at once (RFC 2177), others with their next command. */
  async deliver(subject: string, opts: { body?: string; date?: string | null } = {}): Promise<number> {
    const date = opts.date === undefined
      ? "Date: Mon, 7 Feb 2022 21:52:25 +0000\r\n"
      : opts.date
      ? `Date: ${opts.date}\r\n`
      : "";
    const raw = enc(
      `From: alice@isp-a.test\r\nTo: ${USER}\r\nSubject: ${subject}\r\n${date}Message-ID: <${this.uidNext}@fake>\r\n\r\n${
        opts.body ?? "hello\r\n"
      }`,
    );
    const uid = this.uidNext++;
    this.messages.push({ uid, raw, flags: new Set(), internalDate: "17-Jul-1996 02:44:25 -0700" });
    for (const s of this.sessions) if (s.idleTag) await s.reportExists();
    return uid;
  }

  idleStarted(): void {
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Resolves when some session next enters IDLE. */
  nextIdle(): Promise<void> {
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  commandSeen(line: string): void {
    const waiting = this.#commandWaiters;
    this.#commandWaiters = waiting.filter((w) => !line.toUpperCase().endsWith(w.suffix));
    for (const w of waiting) if (line.toUpperCase().endsWith(w.suffix)) w.resolve();
  }

  /** Resolves when some session next sends a command ending with `suffix` (" NOOP": the next poll). */
  nextCommand(suffix: string): Promise<void> {
    return new Promise((resolve) => this.#commandWaiters.push({ suffix: suffix.toUpperCase(), resolve }));
  }

  count(prefix: string): number {
    return this.commands.filter((c) => c.toUpperCase().startsWith(prefix.toUpperCase())).length;
  }

  /** Stops accepting connections (the port then refuses) but keeps existing sessions. */
  stopListening(): void {
    try {
      this.#listener.close();
    } catch {
      // already
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stopListening();
    for (const s of this.sessions) s.close();
    await this.#accepting;
    await Promise.all([...this.#running]);
  }
}

/* ---------- helpers ---------- */

const FAST: Partial<ImapTuning> = {
  connectTimeoutMs: 2_000,
  greetingTimeoutMs: 2_000,
  commandTimeoutMs: 2_000,
  logoutTimeoutMs: 500,
  reconnectAttempts: 4,
  reconnectBaseDelayMs: 20,
  reconnectMaxDelayMs: 100,
};

async function open(
  server: FakeImap,
  opts: { tuning?: Partial<ImapTuning>; url?: string; log?: string[]; pollIntervalMs?: number } = {},
): Promise<Mailbox> {
  return await openImapMailbox(parseAccount(opts.url ?? server.url()), {
    tuning: { ...FAST, ...opts.tuning },
    log: opts.log ? (l) => opts.log!.push(l) : undefined,
    pollIntervalMs: opts.pollIntervalMs,
  });
}

function isCode(code: string) {
  return (e: unknown) => e instanceof MailError && e.code === code;
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

const SASL = btoa(String.fromCharCode(...enc(`\0${USER}\0${PASSWORD}`)));

function assertNoSecret(text: string | undefined): void {
  if (!text) return;
  assert.ok(!text.includes(PASSWORD), `password leaked: ${text}`);
  assert.ok(!text.includes(SASL), `SASL response leaked: ${text}`);
}

/* ---------- tests ---------- */

Deno.test("logs in with AUTHENTICATE PLAIN in one round trip when SASL-IR is offered", async () => {
  await using server = new FakeImap();
  await using mb = await open(server);
  assert.equal(server.count("A1 AUTHENTICATE PLAIN "), 1);
  assert.equal(server.count("A1 LOGIN"), 0);
  assert.equal(mb.label, `imap://bob%40isp-b.test@127.0.0.1:${server.port}/INBOX?tls=none`);
});

Deno.test("AUTHENTICATE PLAIN without SASL-IR answers the server's empty challenge", async () => {
  await using server = new FakeImap({ caps: "IMAP4rev1 AUTH=PLAIN IDLE UIDPLUS" });
  await using _mb = await open(server);
  assert.ok(server.commands.includes("A1 AUTHENTICATE PLAIN"));
});

Deno.test('LOGIN quotes " and \\ in credentials and sends non-ASCII ones as literals', async () => {
  await using server = new FakeImap({ caps: "IMAP4rev1 IDLE UIDPLUS" });
  await using _mb = await open(server);
  const login = server.commands.find((c) => c.startsWith("A1 LOGIN"));
  assert.ok(login);
  assert.ok(login.startsWith('A1 LOGIN "bob@isp-b.test" {'), login); // the password has "ö": a literal
  await using ascii = new FakeImap({ caps: "IMAP4rev1 IDLE UIDPLUS", password: 'q"uo\\te' });
  await using _mb2 = await open(ascii);
  assert.ok(ascii.commands.includes('A1 LOGIN "bob@isp-b.test" "q\\"uo\\\\te"'), ascii.commands.join("|"));
});

Deno.test("a wrong password is MailError 'auth' with the sentence, and the password appears nowhere", async () => {
  for (const caps of ["IMAP4rev1 AUTH=PLAIN SASL-IR", "IMAP4rev1 AUTH=PLAIN", "IMAP4rev1"]) {
    await using server = new FakeImap({ caps, password: "the-right-one", echoCredentials: true });
    const err = await open(server, { url: server.url("tls=none", PASSWORD) }).then(
      () => assert.fail("logged in"),
      (e) => e,
    );
    assert.ok(err instanceof MailError && err.code === "auth", String(err));
    assert.equal(
      err.message,
      `Cannot log in to 127.0.0.1:${server.port} as "bob@isp-b.test": the server refused the password. Check it, or use an app password.`,
    );
    for (const t of [err.message, err.command, err.response, err.stack, JSON.stringify(err)]) {
      assertNoSecret(t);
    }
    assert.match(String(err.response), /\*\*\*/); // the echoed secret was scrubbed
  }
});

Deno.test("imap:// with the default TLS mode refuses a server without STARTTLS before sending any credentials", async () => {
  await using server = new FakeImap({ caps: "IMAP4rev1 AUTH=PLAIN IDLE" });
  await assert.rejects(() => open(server, { url: server.url("") }), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "tls", String(e));
    assert.match(e.message, /does not offer STARTTLS/);
    return true;
  });
  assert.equal(server.commands.filter((c) => /LOGIN|AUTHENTICATE/i.test(c)).length, 0);
});

Deno.test("a greeting of BYE is 'temporary' and PREAUTH on a clear connection that should be upgraded is 'tls'", async () => {
  await using bye = new FakeImap({ greeting: "* BYE too many connections\r\n" });
  await assert.rejects(() => open(bye), isCode("temporary"));
  await using pre = new FakeImap({ greeting: "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n" });
  await assert.rejects(() => open(pre, { url: pre.url("") }), isCode("tls"));
});

Deno.test("list finds only marker mail, decodes RFC 2047 subjects and falls back to INTERNALDATE", async () => {
  await using server = new FakeImap();
  await server.deliver("[mailmeet] request one");
  await server.deliver("Lunch on friday?");
  await server.deliver("=?UTF-8?B?W21haWxtZWV0XSByw6lwb25zZQ==?=", { date: null });
  await using mb = await open(server);
  const list = await mb.list("[MailMeet]");
  assert.deepEqual(list.map((m) => m.subject), ["[mailmeet] request one", "[mailmeet] réponse"]);
  assert.deepEqual(list.map((m) => m.id), ["1234:1", "1234:3"]);
  assert.equal(list[0].date?.toISOString(), "2022-02-07T21:52:25.000Z");
  assert.equal(list[1].date?.toISOString(), "1996-07-17T09:44:25.000Z");
  assert.equal(list[0].size, server.messages[0].raw.length);
  assert.deepEqual(await mb.list("nothing like this"), []);
  assert.equal(server.commands.filter((c) => /BODY\.PEEK\[\]/i.test(c)).length, 0);
});

Deno.test("a non-ASCII marker is searched with CHARSET UTF-8 as a literal", async () => {
  await using server = new FakeImap();
  await server.deliver("=?UTF-8?Q?Tr=C3=A4ff_mich?=");
  await using mb = await open(server);
  const list = await mb.list("träff");
  assert.equal(list.length, 1);
  assert.ok(
    server.commands.some((c) => /UID SEARCH CHARSET UTF-8 SUBJECT \{6\}/.test(c)),
    server.commands.join("|"),
  );
});

Deno.test("fetch returns the exact bytes; over the cap it is 'too_large' without downloading; stale or gone ids are 'not_found'", async () => {
  await using server = new FakeImap();
  await server.deliver("[mm] a", { body: "* 1 EXISTS\r\nA9 NO BAD\r\n{5}\r\n" });
  await server.deliver("[mm] big", { body: "x".repeat(5000) });
  await using mb = await open(server);
  const [a, big] = await mb.list("[mm]");
  assert.deepEqual(await mb.fetch(a.id, 10_000), server.messages[0].raw);
  await assert.rejects(() => mb.fetch(big.id, 1000), isCode("too_large"));
  assert.equal(server.commands.filter((c) => c.includes(`FETCH 2 (UID BODY.PEEK[])`)).length, 0);
  await assert.rejects(() => mb.fetch("999:1", 10_000), isCode("not_found"));
  await assert.rejects(() => mb.fetch("1234:77", 10_000), isCode("not_found"));
  await assert.rejects(() => mb.fetch("garbage", 10_000), isCode("not_found"));
});

Deno.test("a server that under-reports RFC822.SIZE still cannot push a body past the cap", async () => {
  await using server = new FakeImap({ lieAboutSize: true });
  await server.deliver("[mm] liar", { body: "y".repeat(5000) });
  await server.deliver("[mm] small");
  await using mb = await open(server);
  const [liar, small] = await mb.list("[mm]");
  await assert.rejects(() => mb.fetch(liar.id, 1000), isCode("too_large"));
  // The connection was dropped (the stream position was unknown); the next call reconnects.
  assert.equal((await mb.fetch(small.id, 10_000)).length, server.messages[1].raw.length);
});

Deno.test("delete + commit use UID EXPUNGE with UIDPLUS, leaving a message someone else flagged \\Deleted", async () => {
  await using server = new FakeImap();
  await server.deliver("[mm] one");
  await server.deliver("personal");
  await server.deliver("[mm] two");
  await using mb = await open(server);
  server.messages[1].flags.add("\\Deleted"); // flagged by another client, not expunged yet
  const ids = (await mb.list("[mm]")).map((m) => m.id);
  await mb.delete([...ids, "1234:999", "1:1", "nonsense"]);
  assert.equal(server.messages.length, 3, "nothing removed before commit");
  await mb.commit();
  assert.deepEqual(server.messages.map((m) => m.uid), [2]);
  assert.ok(server.commands.some((c) => / UID EXPUNGE 1,3,999$/.test(c)), server.commands.join("|"));
  assert.equal(server.commands.filter((c) => / EXPUNGE$/.test(c) && !c.includes("UID")).length, 0);
  await mb.commit(); // nothing pending: no command
});

Deno.test("without UIDPLUS commit falls back to EXPUNGE", async () => {
  await using server = new FakeImap({ caps: "IMAP4rev1 AUTH=PLAIN SASL-IR IDLE" });
  await server.deliver("[mm] one");
  await server.deliver("personal");
  await using mb = await open(server);
  await mb.delete((await mb.list("[mm]")).map((m) => m.id));
  await mb.commit();
  assert.ok(server.commands.some((c) => / EXPUNGE$/.test(c) && !c.includes("UID")));
  assert.deepEqual(server.messages.map((m) => m.uid), [2]);
});

Deno.test("untagged chatter between tagged responses (Still here, RECENT, flag FETCHes, unknown data) changes nothing", async () => {
  await using server = new FakeImap({ noise: true });
  await server.deliver("[mm] one");
  await using mb = await open(server);
  const list = await mb.list("[mm]");
  assert.deepEqual(list.map((m) => m.id), ["1234:1"]);
  assert.deepEqual(await mb.fetch(list[0].id, 10_000), server.messages[0].raw);
});

Deno.test("watch yields at once, then on an IDLE push, and aborting ends IDLE with DONE promptly", async () => {
  await using server = new FakeImap();
  await using mb = await open(server);
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  const idling = server.nextIdle();
  const pushed = nextWithin(it, 3000);
  await idling;
  await server.deliver("[mm] pushed");
  assert.equal(await pushed, "yield");
  assert.equal((await mb.list("[mm]")).length, 1);
  const again = server.nextIdle();
  const ended = nextWithin(it, 2000);
  await again;
  const t0 = Date.now();
  ctl.abort();
  assert.equal(await ended, "done");
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(server.count("DONE"), 2);
});

Deno.test("without IDLE, watch polls with NOOP and sees new mail", async () => {
  await using server = new FakeImap({ caps: "IMAP4rev1 AUTH=PLAIN SASL-IR UIDPLUS" });
  await using mb = await open(server, { pollIntervalMs: 50 });
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  const next = nextWithin(it, 3000);
  await server.nextCommand(" NOOP"); // a poll went by with nothing new
  await server.deliver("[mm] polled");
  assert.equal(await next, "yield");
  assert.ok(server.commands.some((c) => c.endsWith(" NOOP")));
  assert.equal(server.commands.filter((c) => c.endsWith(" IDLE")).length, 0);
  ctl.abort();
  assert.equal(await nextWithin(it, 1000), "done");
});

Deno.test("a server that answers IDLE with BAD is polled instead", async () => {
  // Advertises IDLE but refuses it.
  await using refusing = new FakeImap({
    hook: (s, tag, line) => {
      if (line.toUpperCase() === "IDLE") {
        void s.send(`${tag} BAD not today\r\n`);
        return "handled";
      }
      return undefined;
    },
  });
  const log: string[] = [];
  await using mb = await open(refusing, { pollIntervalMs: 50, log });
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  const next = nextWithin(it, 3000);
  await refusing.nextCommand(" NOOP"); // refused, it polls now
  await refusing.deliver("[mm] polled");
  assert.equal(await next, "yield");
  assert.ok(log.some((l) => l.includes("refused IDLE")), log.join("\n"));
  ctl.abort();
  await nextWithin(it, 1000);
});

Deno.test("mail announced during a list's SEARCH is found by that same list, and not yielded again", async () => {
  await using server = new FakeImap();
  await using mb = await open(server);
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  // The message lands after SEARCH computed its answer; the EXISTS rides on SEARCH's completion.
  server.afterSearch = () => {
    server.afterSearch = undefined;
    void server.deliver("[mm] sneaky");
  };
  // The list searches again when an EXISTS came in with the results, so the caller sees it now.
  assert.equal((await mb.list("[mm]")).length, 1);
  assert.equal(await nextWithin(it, 500), "timeout");
  ctl.abort();
  await nextWithin(it, 1000);
});

Deno.test("IDLE is re-issued after the refresh interval without yielding", async () => {
  await using server = new FakeImap();
  await using mb = await open(server, { tuning: { idleRefreshMs: 100, idleMarginMs: 1000 } });
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  assert.equal(await nextWithin(it, 450), "timeout");
  assert.ok(server.commands.filter((c) => c.endsWith(" IDLE")).length >= 3, server.commands.join("|"));
  ctl.abort();
  assert.equal(await nextWithin(it, 1000), "done");
});

Deno.test("an operation called while IDLE runs ends it (DONE), runs, and IDLE resumes", async () => {
  await using server = new FakeImap();
  await server.deliver("[mm] one");
  await using mb = await open(server);
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  const idling = server.nextIdle();
  const pending = nextWithin(it, 3000);
  await idling;
  const t0 = Date.now();
  assert.equal((await mb.list("[mm]")).length, 1);
  assert.ok(Date.now() - t0 < 1000);
  await server.nextIdle();
  await server.deliver("[mm] two");
  assert.equal(await pending, "yield");
  ctl.abort();
  await nextWithin(it, 1000);
});

Deno.test("BYE during IDLE: the client reconnects, re-selects, yields, and ids stay the same", async () => {
  let byes = 0;
  await using server = new FakeImap();
  server.opts.hook = (s, _tag, line) => {
    if (line.toUpperCase() === "IDLE" && byes === 0) {
      byes++;
      setTimeout(() => {
        void s.send("* BYE Server shutting down.\r\n").then(() => s.close());
      }, 50);
    }
    return undefined;
  };
  await server.deliver("[mm] before");
  const log: string[] = [];
  await using mb = await open(server, { log });
  const before = await mb.list("[mm]");
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  assert.equal(await nextWithin(it, 3000), "yield"); // after the reconnect
  assert.ok(log.some((l) => /Reconnected/.test(l)), log.join("\n"));
  for (const l of log) assertNoSecret(l);
  assert.equal(server.count("A1 AUTHENTICATE"), 2);
  assert.deepEqual((await mb.list("[mm]")).map((m) => m.id), before.map((m) => m.id));
  ctl.abort();
  await nextWithin(it, 1000);
});

Deno.test("a dropped connection between operations is replaced and the operation retried once", async () => {
  await using server = new FakeImap();
  await server.deliver("[mm] one");
  const log: string[] = [];
  await using mb = await open(server, { log });
  for (const s of server.sessions) s.close();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal((await mb.list("[mm]")).length, 1);
  assert.ok(log.some((l) => /Reconnected/.test(l)));
});

Deno.test("a changed UIDVALIDITY after a reconnect makes old ids 'not_found' and is logged", async () => {
  await using server = new FakeImap();
  await server.deliver("[mm] one");
  const log: string[] = [];
  await using mb = await open(server, { log });
  const [old] = await mb.list("[mm]");
  server.uidValidity = 99;
  for (const s of server.sessions) s.close();
  const [fresh] = await mb.list("[mm]");
  assert.equal(fresh.id, "99:1");
  await assert.rejects(() => mb.fetch(old.id, 10_000), isCode("not_found"));
  assert.ok(log.some((l) => l.includes("UIDVALIDITY 1234 → 99")), log.join("\n"));
});

Deno.test("reconnecting gives up after the bounded attempts with MailError 'connect'", async () => {
  await using server = new FakeImap();
  const log: string[] = [];
  await using mb = await open(server, { log, tuning: { reconnectAttempts: 3 } });
  server.stopListening();
  for (const s of server.sessions) s.close();
  const t0 = Date.now();
  await assert.rejects(() => mb.list("[mm]"), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "connect", String(e));
    assert.match(e.message, /after 3 attempts/);
    return true;
  });
  assert.ok(Date.now() - t0 < 3000);
  assert.equal(log.filter((l) => /failed \(attempt/.test(l)).length >= 3, true, log.join("\n"));
  for (const l of log) assertNoSecret(l);
});

Deno.test("a server that stops answering gives a 'timeout' MailError, not a hang", async () => {
  await using server = new FakeImap({
    hook: (_s, _t, line) => line.startsWith("UID SEARCH") ? "silent" : undefined,
  });
  await using mb = await open(server, { tuning: { commandTimeoutMs: 200 } });
  const t0 = Date.now();
  await assert.rejects(() => mb.list("[mm]"), isCode("timeout"));
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
});

Deno.test("a server that never greets times out", async () => {
  await using server = new FakeImap({ greeting: "" });
  await assert.rejects(() => open(server, { tuning: { greetingTimeoutMs: 200 } }), isCode("timeout"));
});

Deno.test("close sends LOGOUT, ends a running watch, and later calls fail with 'closed'", async () => {
  await using server = new FakeImap();
  const mb = await open(server);
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  const idling = server.nextIdle();
  const ended = nextWithin(it, 2000);
  await idling;
  await mb.close();
  assert.equal(await ended, "done");
  assert.ok(server.commands.some((c) => c.endsWith(" LOGOUT")));
  await assert.rejects(() => mb.list("[mm]"), isCode("closed"));
  await mb.close(); // twice is fine
});

Deno.test("watch ends with MailError 'connect' once reconnecting gives up, instead of retrying for ever", async () => {
  await using server = new FakeImap();
  await using mb = await open(server, { tuning: { reconnectAttempts: 3 } });
  const ctl = new AbortController();
  const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
  assert.equal(await nextWithin(it, 1000), "yield");
  const idling = server.nextIdle();
  const next = it.next();
  await idling;
  server.stopListening();
  for (const s of server.sessions) s.close();
  await assert.rejects(() => next, isCode("connect"));
});

Deno.test("imap: a server that offers STARTTLS and refuses it when asked (shutting down) fails as temporary, sending no credentials", async () => {
  await using server = new FakeImap({ caps: "IMAP4rev1 AUTH=PLAIN IDLE STARTTLS" });
  await assert.rejects(() => open(server, { url: server.url("") }), (e: unknown) => {
    const temporary = e instanceof MailError &&
      (e.code === "temporary" || (e.cause instanceof MailError && e.cause.code === "temporary"));
    assert.ok(temporary, String(e));
    assert.match(String((e as Error).message), /refused STARTTLS though it offers it/);
    return true;
  });
  assert.equal(server.commands.filter((c) => /LOGIN|AUTHENTICATE/i.test(c)).length, 0);
});
