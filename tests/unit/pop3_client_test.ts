/**
 * The POP3 client against a scripted fake server on 127.0.0.1: behaviour a real server will not
 * show on demand (no STLS, a connection cut before QUIT, -ERR on DELE, a server that goes silent).
 * The fake keeps RFC 1939 semantics: a snapshot per session, removal only at QUIT in TRANSACTION.
 */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { MailError } from "../../src/mail/errors.ts";
import { LineReader } from "../../src/mail/line_reader.ts";
import { Pop3Mailbox, type Pop3Tuning } from "../../src/mail/pop3/mailbox.ts";
import { backoffDelay } from "../../src/mail/backoff.ts";

const USER = "bob@isp-b.test";
const PASSWORD = "S3cret-Pw-never-shown";
const MARKER = "[mailmeet]";

interface FakeMessage {
  uidl: string;
  raw: string;
}

type Reply = "default" | "drop" | "silent" | string;

interface FakeSession {
  id: number;
  authed: boolean;
  snapshot: FakeMessage[];
  deleted: Set<number>;
}

function message(uidl: string, subject: string, body = "hello\r\n"): FakeMessage {
  return {
    uidl,
    raw: `From: a@x.test\r\nSubject: ${subject}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n${body}`,
  };
}

function stuff(text: string): string {
  return text.split("\r\n").map((l) => (l.startsWith(".") ? "." + l : l)).join("\r\n");
}

class FakePop3 {
  maildrop: FakeMessage[] = [];
  capa = ["USER", "UIDL", "TOP"];
  /** Every command line received, prefixed with the session number. */
  commands: string[] = [];
  /** The UIDLs removed at each QUIT that entered the UPDATE state. */
  updates: string[][] = [];
  greet = true;
  hook?: (command: string, s: FakeSession) => Reply;
  #listener: Deno.Listener;
  #conns = new Set<Deno.Conn>();
  #sessions = 0;
  #serving: Promise<void>;

  constructor(port = 0) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port });
    this.#serving = this.#accept();
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  url(params = "tls=none"): string {
    return `pop3://${encodeURIComponent(USER)}:${PASSWORD}@127.0.0.1:${this.port}/?${params}`;
  }

  /** Commands of one kind, e.g. "TOP". */
  sent(verb: string): string[] {
    return this.commands.filter((c) => c.split(" ")[1]?.toUpperCase() === verb);
  }

  /** Cuts every open connection, as a server restart would. */
  dropAll(): void {
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    this.#conns.clear();
  }

  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    this.dropAll();
    await this.#serving;
  }

  async #accept(): Promise<void> {
    const served: Promise<void>[] = [];
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        served.push(this.#serve(conn).finally(() => this.#conns.delete(conn)));
      }
    } catch { /* listener closed */ }
    await Promise.allSettled(served);
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const s: FakeSession = { id: ++this.#sessions, authed: false, snapshot: [], deleted: new Set() };
    const reader = new LineReader(conn);
    const send = async (text: string) => {
      try {
        await conn.write(new TextEncoder().encode(text));
      } catch { /* client went away */ }
    };
    // Going silent: read and ignore everything until the client gives up and hangs up.
    const silent = async () => {
      while ((await reader.readLineBytes()) !== null) { /* ignored */ }
    };
    try {
      if (!this.greet) return await silent();
      await send("+OK fake POP3 ready\r\n");
      let user = "";
      for (;;) {
        const line = await reader.readLine();
        if (line === null) return;
        this.commands.push(`${s.id} ${line}`);
        const reply = this.hook?.(line, s) ?? "default";
        if (reply === "drop") return conn.close();
        if (reply === "silent") return await silent();
        if (reply !== "default") {
          await send(reply);
          continue;
        }
        const [verb = "", ...args] = line.split(" ");
        const n = Number(args[0]);
        const msg = s.authed && !s.deleted.has(n) ? s.snapshot[n - 1] : undefined;
        const live = () => s.snapshot.map((m, i) => ({ m, n: i + 1 })).filter(({ n }) => !s.deleted.has(n));
        const login = (ok: boolean) => {
          if (!ok) return "-ERR [AUTH] Authentication failed.\r\n";
          s.authed = true;
          s.snapshot = [...this.maildrop];
          return "+OK Logged in.\r\n";
        };
        switch (verb.toUpperCase()) {
          case "CAPA":
            await send(`+OK\r\n${this.capa.map((c) => c + "\r\n").join("")}.\r\n`);
            break;
          case "USER":
            user = args.join(" ");
            await send("+OK\r\n");
            break;
          case "PASS":
            await send(login(user === USER && args.join(" ") === PASSWORD));
            break;
          case "AUTH": {
            const plain = atob(args[1] ?? "");
            await send(login(args[0] === "PLAIN" && plain === `\0${USER}\0${PASSWORD}`));
            break;
          }
          case "UIDL":
            await send(`+OK\r\n${live().map(({ m, n }) => `${n} ${m.uidl}\r\n`).join("")}.\r\n`);
            break;
          case "LIST":
            await send(`+OK\r\n${live().map(({ m, n }) => `${n} ${m.raw.length}\r\n`).join("")}.\r\n`);
            break;
          case "TOP":
            if (!msg) await send("-ERR no such message\r\n");
            else await send(`+OK\r\n${stuff(m2head(msg.raw))}.\r\n`);
            break;
          case "RETR":
            if (!msg) await send("-ERR no such message\r\n");
            else await send(`+OK ${msg.raw.length} octets\r\n${stuff(msg.raw)}.\r\n`);
            break;
          case "DELE":
            if (!msg) await send("-ERR no such message\r\n");
            else {
              s.deleted.add(n);
              await send("+OK Marked to be deleted.\r\n");
            }
            break;
          case "RSET":
            s.deleted.clear();
            await send("+OK\r\n");
            break;
          case "NOOP":
            await send("+OK\r\n");
            break;
          case "QUIT": {
            if (s.authed) {
              // RFC 1939 §6: the UPDATE state, entered only from TRANSACTION by QUIT.
              const gone = [...s.deleted].map((n) => s.snapshot[n - 1].uidl);
              this.maildrop = this.maildrop.filter((m) => !gone.includes(m.uidl));
              this.updates.push(gone);
            }
            await send("+OK Logging out.\r\n");
            return conn.close();
          }
          default:
            await send("-ERR Unknown command\r\n");
        }
      }
    } catch {
      // connection cut
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }
}

function m2head(raw: string): string {
  const end = raw.indexOf("\r\n\r\n");
  return end < 0 ? raw : raw.slice(0, end + 4);
}

const FAST: Partial<Pop3Tuning> = {
  connectTimeoutMs: 1_000,
  greetingTimeoutMs: 500,
  commandTimeoutMs: 500,
  logoutTimeoutMs: 300,
  reconnectAttempts: 4,
  reconnectBaseDelayMs: 20,
  reconnectMaxDelayMs: 100,
};

/** Enough attempts to outlast a 100–150 ms outage. */
const PATIENT: Partial<Pop3Tuning> = { ...FAST, reconnectAttempts: 8 };

function open(
  server: FakePop3,
  opts: { params?: string; log?: string[]; poll?: number } = {},
  tuning = FAST,
) {
  return Pop3Mailbox.open(parseAccount(server.url(opts.params)), {
    pollIntervalMs: opts.poll ?? 60_000,
    log: opts.log ? (l) => opts.log!.push(l) : undefined,
  }, tuning);
}

function isMailError(code: string) {
  return (e: unknown) => e instanceof MailError && e.code === code;
}

/** Everything an error could show a user or a log. */
function allText(e: unknown): string {
  const m = e as MailError;
  return [m.message, m.command, m.response, String(m.cause ?? "")].join("\n");
}

Deno.test("pop3 refuses to log in when the server does not offer STLS (looked at twice), sending no credentials", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", "x")];
  // no ?tls=none: pop3:// means STLS is required
  await assert.rejects(() => open(server, { params: "" }), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "tls", String(e));
    assert.match(e.message, /does not offer STLS.*Use pop3s:\/\//);
    return true;
  });
  assert.deepEqual(server.commands.map((c) => c.split(" ")[1]), ["CAPA", "CAPA"]);
  assert.ok(!server.commands.join("\n").includes(PASSWORD));
});

Deno.test("pop3: a first connection that finds no STLS for a moment (a server restarting) looks again, never in clear", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", "x")];
  // The fake speaks no TLS: once STLS is offered again, it refuses it (still shutting down), and
  // the failure stays a temporary one: the second look was taken, not the first one's verdict.
  server.capa = ["UIDL", "TOP", "USER", "STLS"];
  let capas = 0;
  server.hook = (c) =>
    c.startsWith("CAPA") && ++capas === 1
      ? "+OK\r\nUIDL\r\nTOP\r\nUSER\r\n.\r\n"
      : c.startsWith("STLS")
      ? "-ERR Shutting down\r\n"
      : "default";
  const log: string[] = [];
  await assert.rejects(() => open(server, { params: "", log }), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "connect", String(e));
    return true;
  });
  assert.match(log[0], /does not offer STLS right now; looking once more/);
  assert.equal(server.sent("STLS").length, FAST.reconnectAttempts! - 1, "STLS asked for at every later look");
  assert.equal(server.sent("PASS").length + server.sent("AUTH").length, 0);
});

Deno.test("pop3 logs in with AUTH PLAIN when SASL PLAIN is advertised, else with USER/PASS", async () => {
  await using server = disposable(new FakePop3());
  server.capa = ["UIDL", "TOP", "SASL PLAIN"];
  await (await open(server)).close();
  assert.equal(server.sent("AUTH").length, 1);
  assert.equal(server.sent("PASS").length, 0);
  server.capa = ["UIDL", "TOP", "USER"];
  await (await open(server)).close();
  assert.equal(server.sent("PASS").length, 1);
});

Deno.test("pop3 wrong password is an auth error that names server and user and never shows the password", async () => {
  await using server = disposable(new FakePop3());
  for (const capa of [["USER"], ["SASL PLAIN"]]) {
    server.capa = capa;
    const account = parseAccount(server.url().replace(PASSWORD, "wrong-" + PASSWORD));
    await assert.rejects(() => Pop3Mailbox.open(account, {}, FAST), (e: unknown) => {
      assert.ok(e instanceof MailError && e.code === "auth", String(e));
      assert.equal(
        e.message,
        `Cannot log in to 127.0.0.1:${server.port} as "${USER}": the server refused the password. Check it, or use an app password.`,
      );
      assert.ok(!allText(e).includes(PASSWORD), allText(e));
      assert.ok(e.command === "PASS ***" || e.command === "AUTH PLAIN ***");
      return true;
    });
  }
});

Deno.test("pop3 login refused with [IN-USE] is retried as temporary, not reported as a wrong password", async () => {
  await using server = disposable(new FakePop3());
  server.hook = (c) => c.startsWith("PASS") ? "-ERR [IN-USE] Mailbox is locked\r\n" : "default";
  await assert.rejects(() => open(server), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "connect", String(e));
    assert.match(e.message, /mailbox is in use \("Mailbox is locked"\)\. Try again later/);
    assert.ok(e.cause instanceof MailError && e.cause.code === "temporary");
    return true;
  });
  assert.equal(server.sent("PASS").length, FAST.reconnectAttempts);
});

Deno.test("pop3 list reads only headers with TOP n 0, decodes subjects, and never TOPs a UIDL twice", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [
    message("u1", `${MARKER} request`),
    message("u2", "personal mail"),
    message("u3", "=?UTF-8?B?W01haWxNZWV0XSByw6lwb25zZQ==?="), // "[MailMeet] réponse"
  ];
  await using mb = await open(server, { poll: 1 });
  const first = await mb.list(MARKER);
  assert.deepEqual(first.map((m) => [m.id, m.subject]), [["u1", `${MARKER} request`], [
    "u3",
    "[MailMeet] réponse",
  ]]);
  assert.equal(first[0].size, server.maildrop[0].raw.length);
  assert.equal(first[0].date?.toISOString(), "2026-11-24T10:00:00.000Z");
  assert.deepEqual(server.sent("TOP").map((c) => c.split(" ").slice(1).join(" ")), [
    "TOP 1 0",
    "TOP 2 0",
    "TOP 3 0",
  ]);
  server.maildrop.push(message("u4", `${MARKER} later`));
  await new Promise((r) => setTimeout(r, 5)); // older than the 1 ms poll interval: list starts a new session
  const second = await mb.list(MARKER);
  assert.deepEqual(second.map((m) => m.id), ["u1", "u3", "u4"]);
  assert.equal(server.sent("TOP").length, 4);
  assert.equal(server.sent("RETR").length, 0);
});

Deno.test("pop3 fetch returns the exact dot-unstuffed bytes; over the cap is too_large without RETR; unknown is not_found", async () => {
  await using server = disposable(new FakePop3());
  const body = ".leading dot\r\n.\r\n..\r\nlast line\r\n";
  server.maildrop = [message("u1", MARKER, body), message("u2", MARKER, "x".repeat(5000) + "\r\n")];
  await using mb = await open(server);
  const got = await mb.fetch("u1", 100_000);
  assert.equal(new TextDecoder().decode(got), server.maildrop[0].raw);
  await assert.rejects(() => mb.fetch("u2", 1000), isMailError("too_large"));
  assert.equal(server.sent("RETR").length, 1);
  await assert.rejects(() => mb.fetch("nope", 100_000), isMailError("not_found"));
});

Deno.test("pop3 fetch stops at the cap when LIST understated the size, and the next call reconnects", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", MARKER, "y".repeat(4000) + "\r\n"), message("u2", MARKER)];
  server.hook = (c) => (c.startsWith("LIST") ? "+OK\r\n1 10\r\n2 100\r\n.\r\n" : "default");
  await using mb = await open(server);
  await assert.rejects(() => mb.fetch("u1", 1000), isMailError("too_large"));
  assert.equal(new TextDecoder().decode(await mb.fetch("u2", 1000)), server.maildrop[1].raw);
});

Deno.test("pop3 removes nothing when the connection drops before QUIT, and close() does not commit", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", MARKER), message("u2", "personal"), message("u3", MARKER)];
  const mb = await open(server);
  await mb.delete(["u1"]);
  assert.deepEqual((await mb.list(MARKER)).map((m) => m.id), ["u3"]); // marked messages are hidden
  server.dropAll();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.updates.length, 0);
  assert.equal(server.maildrop.length, 3);
  await mb.delete(["u3"]); // reconnects, marks u1 again, then u3
  await mb.close();
  assert.equal(server.maildrop.length, 3, "close() removed mail that was never committed");
  assert.ok(server.updates.every((u) => u.length === 0), JSON.stringify(server.updates));
  const last = server.commands.filter((c) => c.startsWith(`${server.commands.at(-1)!.split(" ")[0]} `));
  assert.deepEqual(last.slice(-2).map((c) => c.split(" ")[1]), ["RSET", "QUIT"]);
});

Deno.test("pop3 commit removes exactly the deleted messages, even after a reconnect in between", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", MARKER), message("u2", "personal"), message("u3", MARKER)];
  await using mb = await open(server);
  await mb.delete(["u1", "unknown-id"]);
  server.dropAll();
  await mb.commit();
  assert.deepEqual(server.maildrop.map((m) => m.uidl), ["u2", "u3"]);
  assert.deepEqual(server.updates.filter((u) => u.length > 0), [["u1"]]);
  // the next operation opens a new session
  assert.deepEqual((await mb.list(MARKER)).map((m) => m.id), ["u3"]);
  await mb.delete(["u3"]);
  await mb.commit();
  assert.deepEqual(server.maildrop.map((m) => m.uidl), ["u2"]);
});

Deno.test("pop3 DELE refused is a protocol error and commit then removes nothing", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", MARKER)];
  server.hook = (c) => (c.startsWith("DELE") ? "-ERR [SYS/PERM] read-only mailbox\r\n" : "default");
  await using mb = await open(server);
  await assert.rejects(() => mb.delete(["u1"]), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "protocol");
    assert.equal(e.command, "DELE 1");
    return true;
  });
  await mb.commit();
  assert.equal(server.maildrop.length, 1);
  assert.deepEqual(server.updates.flat(), []);
});

Deno.test("pop3 a server that goes silent times out instead of hanging", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", MARKER)];
  server.greet = false;
  let t0 = Date.now();
  await assert.rejects(() => open(server, {}, { ...FAST, reconnectAttempts: 2 }), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "connect", String(e));
    assert.match(e.message, /after 2 attempts.*did not answer/);
    return true;
  });
  assert.ok(Date.now() - t0 < 3_000);
  server.greet = true;
  await using mb = await open(server, {}, { ...FAST, reconnectAttempts: 2 });
  server.hook = (c) => (c.startsWith("RETR") ? "silent" : "default");
  t0 = Date.now();
  await assert.rejects(() => mb.fetch("u1", 100_000), isMailError("timeout"));
  // one timeout, one reconnect, one more timeout: bounded by the command timeout, not forever
  assert.ok(Date.now() - t0 < 4_000, `took ${Date.now() - t0} ms`);
});

Deno.test("pop3 reconnects with backoff while the server is down, logging without the password", async () => {
  const log: string[] = [];
  const first = new FakePop3();
  const port = first.port;
  first.maildrop = [message("u1", MARKER)];
  const mb = await open(first, { log }, PATIENT);
  await first.close();
  let second: FakePop3 | undefined;
  const restart = setTimeout(() => {
    second = new FakePop3(port);
    second.maildrop = [message("u1", MARKER), message("u2", MARKER)];
  }, 150);
  try {
    const listed = await mb.list(MARKER);
    assert.deepEqual(listed.map((m) => m.id), ["u1", "u2"]);
    assert.ok(log.some((l) => /connection lost/.test(l)), log.join("\n"));
    assert.ok(log.some((l) => /retrying in \d+ ms/.test(l)), log.join("\n"));
    assert.ok(!log.join("\n").includes(PASSWORD));
  } finally {
    clearTimeout(restart);
    await mb.close();
    await second?.close();
  }
});

Deno.test("pop3 gives up after a bounded number of attempts with a connect error", async () => {
  const server = new FakePop3();
  server.maildrop = [message("u1", MARKER)];
  const mb = await open(server);
  await server.close();
  await assert.rejects(() => mb.list(MARKER), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "connect", String(e));
    assert.match(e.message, /after 4 attempts/);
    return true;
  });
  await mb.close();
});

Deno.test("pop3 backoff grows exponentially, is capped, and keeps half of each step random", () => {
  const t = { reconnectBaseDelayMs: 100, reconnectMaxDelayMs: 1000 };
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, { ...t, random: () => 0 })), [
    50,
    100,
    200,
    400,
    500,
    500,
  ]);
  assert.deepEqual([1, 2, 5].map((a) => backoffDelay(a, { ...t, random: () => 0.999999 })), [100, 200, 1000]);
});

Deno.test("pop3 watch yields at once, then only when a new session shows a new UIDL", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", MARKER)];
  await using mb = await open(server, { poll: 30 });
  const ac = new AbortController();
  const yields: number[] = [];
  const second = Promise.withResolvers<void>();
  const t0 = Date.now();
  const watching = (async () => {
    for await (const _ of mb.watch(ac.signal)) {
      yields.push(Date.now() - t0);
      if (yields.length === 2) second.resolve();
    }
  })();
  await commandsSeen(server, "PASS", 4); // three polls went by, the fourth is logging in
  assert.equal(yields.length, 1, "polls without new mail should not wake the caller");
  const sessionsBefore = new Set(server.commands.map((c) => c.split(" ")[0])).size;
  assert.ok(sessionsBefore >= 4, `expected a new session per poll, saw ${sessionsBefore}`);
  server.maildrop.push(message("u2", MARKER));
  const added = Date.now() - t0;
  await second.promise;
  assert.ok(yields[1] - added < 200, `new mail seen after ${yields[1] - added} ms`);
  ac.abort();
  await watching;
});

Deno.test("pop3 watch: a poll refresh never commits uncommitted deletions", async () => {
  await using server = disposable(new FakePop3());
  server.maildrop = [message("u1", MARKER), message("u2", MARKER)];
  await using mb = await open(server, { poll: 20 });
  await mb.delete(["u1"]);
  const ac = new AbortController();
  const watching = (async () => {
    for await (const _ of mb.watch(ac.signal)) { /* polls happen between iterations */ }
  })();
  await commandsSeen(server, "RSET", 2); // two poll refreshes went by
  ac.abort();
  await watching;
  assert.equal(server.maildrop.length, 2);
  assert.deepEqual(server.updates.flat(), []);
  assert.ok(server.sent("RSET").length >= 1);
  // and the deletion is still pending: commit applies it in the current session
  await mb.commit();
  assert.deepEqual(server.maildrop.map((m) => m.uidl), ["u2"]);
});

Deno.test("pop3 watch ends promptly when aborted during the wait", async () => {
  await using server = disposable(new FakePop3());
  await using mb = await open(server, { poll: 60_000 });
  const ac = new AbortController();
  let yields = 0;
  const first = Promise.withResolvers<void>();
  const watching = (async () => {
    for await (const _ of mb.watch(ac.signal)) {
      yields++;
      first.resolve();
    }
  })();
  await first.promise; // the watch now waits for the next poll
  const t0 = Date.now();
  ac.abort();
  await watching;
  assert.equal(yields, 1);
  assert.ok(Date.now() - t0 < 100);
});

Deno.test("pop3 watch yields after the server restarts and shows mail that arrived meanwhile", async () => {
  const log: string[] = [];
  const first = new FakePop3();
  const port = first.port;
  first.maildrop = [message("u1", MARKER)];
  const mb = await open(first, { poll: 50, log }, PATIENT);
  const ac = new AbortController();
  let second: FakePop3 | undefined;
  try {
    const it = mb.watch(ac.signal)[Symbol.asyncIterator]();
    await it.next();
    await first.close();
    await new Promise((r) => setTimeout(r, 100));
    second = new FakePop3(port);
    second.maildrop = [message("u1", MARKER), message("u2", MARKER)];
    const next = await it.next();
    assert.equal(next.done, false);
    assert.deepEqual((await mb.list(MARKER)).map((m) => m.id), ["u1", "u2"]);
    ac.abort();
    assert.equal((await it.next()).done, true);
  } finally {
    await mb.close();
    await second?.close();
  }
});

function disposable(server: FakePop3): FakePop3 & AsyncDisposable {
  return Object.assign(server, { [Symbol.asyncDispose]: () => server.close() });
}

/** Resolves once the server has seen `n` more commands starting with `prefix`: a sync point, not a sleep. */
function commandsSeen(server: FakePop3, prefix: string, n = 1): Promise<void> {
  const done = Promise.withResolvers<void>();
  const before = server.hook;
  let left = n;
  server.hook = (c, s) => {
    if (c.startsWith(prefix) && --left === 0) {
      server.hook = before;
      done.resolve();
    }
    return before?.(c, s) ?? "default";
  };
  return done.promise;
}

Deno.test("pop3: a server that promises [AUTH] (AUTH-RESP-CODE) and refuses without it is restarting, not refusing the password", async () => {
  await using server = disposable(new FakePop3());
  server.capa = ["USER", "UIDL", "TOP", "AUTH-RESP-CODE"];
  // What Dovecot answers a login while it shuts down.
  server.hook = (c) => c.startsWith("PASS") ? "-ERR Shutting down\r\n" : "default";
  await assert.rejects(() => open(server), (e: unknown) => {
    assert.ok(
      e instanceof MailError && e.cause instanceof MailError && e.cause.code === "temporary",
      String(e),
    );
    return true;
  });
  // With [AUTH] it is the password; without the capability, a bare -ERR still counts as one.
  server.hook = (c) => c.startsWith("PASS") ? "-ERR [AUTH] Authentication failed.\r\n" : "default";
  await assert.rejects(() => open(server), (e: unknown) => e instanceof MailError && e.code === "auth");
  server.capa = ["USER", "UIDL", "TOP"];
  server.hook = (c) => c.startsWith("PASS") ? "-ERR Shutting down\r\n" : "default";
  await assert.rejects(() => open(server), (e: unknown) => e instanceof MailError && e.code === "auth");
});

Deno.test("pop3: a server that offers STLS and refuses it when asked (shutting down) is retried as temporary, never logged into in clear", async () => {
  await using server = disposable(new FakePop3());
  server.capa = ["UIDL", "TOP", "USER", "STLS"];
  server.hook = (c) => c.startsWith("STLS") ? "-ERR Shutting down\r\n" : "default";
  await assert.rejects(() => open(server, { params: "" }), (e: unknown) => {
    assert.ok(e instanceof MailError && e.code === "connect", String(e));
    assert.match(e.message, /refused STLS though it offers it: "-ERR Shutting down"/);
    assert.ok(e.cause instanceof MailError && e.cause.code === "temporary");
    return true;
  });
  assert.equal(server.sent("STLS").length, FAST.reconnectAttempts);
  assert.equal(server.sent("PASS").length + server.sent("AUTH").length, 0);
  assert.ok(!server.commands.join("\n").includes(PASSWORD));
});
