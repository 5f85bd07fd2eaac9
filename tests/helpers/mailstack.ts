/**
 * The real mail stack (Postfix + Dovecot on 127.0.0.1, started by scripts/mailstack.sh) as a
 * disposable handle: `await using stack = await mailStack();`.
 *
 * Any local part on the stack's domains is an account with the one shared password, so tests isolate
 * themselves with `stack.freshAddress("alice")` instead of cleaning mailboxes.
 */

const SCRIPT = new URL("../../scripts/mailstack.sh", import.meta.url).pathname;
const SMTP_REPLY_TIMEOUT_MS = 15_000;
const DELIVERY_TIMEOUT_MS = 15_000;
const POLL_MS = 10;

export type UrlKind = "submission" | "smtps" | "smtp" | "imap" | "imaps" | "pop3" | "pop3s";

export interface MailStackPorts {
  smtp: number;
  submission: number;
  smtps: number;
  imap: number;
  imaps: number;
  pop3: number;
  pop3s: number;
}

export interface MailStack extends AsyncDisposable {
  readonly host: string;
  readonly caFile: string;
  readonly caPem: string;
  readonly spool: string;
  readonly password: string;
  readonly domains: string[];
  /** A few suggested accounts on each domain (alice, bob, carol, dave, host). */
  readonly accounts: string[];
  readonly ports: MailStackPorts;
  /** The domain whose accounts log in only with OAuth2 bearer tokens (no password). */
  readonly oauthDomain: string;
  /** Where Dovecot's oauth2 passdb asks whether a token is good: a test serves it on 127.0.0.1. */
  readonly oauthIntrospectPort: number;
  /** An `auth=oauth2` URL (no password) of a kind as url() takes, for an oauth-domain address. */
  oauthUrl(kind: UrlKind | string, address: string): string;
  /** A new unique address (never returned before in any process), e.g. "t-<time36>-<rand>-alice@isp-a.test". */
  freshAddress(name?: string, domain?: string): string;
  /**
   * Account URL with percent-encoded credentials for this address: imap (STARTTLS), imaps, pop3 (STLS),
   * pop3s, submission (`smtp://…:10587`, STARTTLS + AUTH), smtps, smtp (the MX port, no TLS, no creds).
   */
  url(kind: UrlKind | string, address: string): string;
  restartDovecot(): Promise<void>;
  /** Stops Postfix (SMTP refused on every port) until startPostfix(). */
  stopPostfix(): Promise<void>;
  startPostfix(): Promise<void>;
  /** Raw RFC 5322 files currently in an address's Maildir (new/ and cur/), oldest first. */
  rawMessages(address: string): Promise<Uint8Array[]>;
  /**
   * Delivers a raw message with plain SMTP to the MX port; resolves once it is in the Maildir
   * (or, with `wait: false`, once Postfix accepted it: for a box a running reader empties).
   */
  deliverRaw(to: string, raw: string, opts?: { wait?: boolean }): Promise<void>;
  /** Waits until `address`'s Maildir holds at least n messages; throws after timeoutMs. */
  waitForMessages(address: string, n: number, timeoutMs?: number): Promise<void>;
}

interface StackEnv {
  host: string;
  ca: string;
  spool: string;
  password: string;
  domains: string[];
  accounts: string[];
  ports: MailStackPorts;
  oauth_domain: string;
  oauth_introspect_port: number;
}

async function script(...args: string[]): Promise<string> {
  const out = await new Deno.Command("bash", { args: [SCRIPT, ...args], stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `Cannot run "scripts/mailstack.sh ${args.join(" ")}": exit ${out.code}\n${dec.decode(out.stderr)}`,
    );
  }
  return dec.decode(out.stdout);
}

/**
 * Every mailStack() call runs `start` (about 0.1 s when the stack is up, and it brings back a stack
 * that someone stopped meanwhile); calls made while one is in flight share it.
 */
let starting: Promise<string> | undefined;
let stackEnv: Promise<StackEnv> | undefined;

async function ensureStarted(): Promise<StackEnv> {
  starting ??= script("start").finally(() => (starting = undefined));
  await starting;
  stackEnv ??= script("env", "--json").then((out) => JSON.parse(out) as StackEnv);
  stackEnv.catch(() => (stackEnv = undefined));
  return await stackEnv;
}

let counter = 0;

function freshAddress(domains: string[], name = "user", domain = domains[0]): string {
  const time = Date.now().toString(36);
  const rand = crypto.getRandomValues(new Uint32Array(2)).reduce((s, n) => s + n.toString(36), "");
  const local = name.toLowerCase().replace(/[^a-z0-9.-]+/g, "-");
  return `t-${time}-${rand}${(counter++).toString(36)}-${local}@${domain}`;
}

function maildirOf(spool: string, address: string): string {
  // Dovecot stores each user in spool/%Lu (the lower-cased full address), like mailmeet's maildir:.
  return `${spool}/${address.trim().toLowerCase()}`;
}

async function listMaildir(dir: string): Promise<{ path: string; key: string; mtime: number }[]> {
  const seen = new Map<string, { path: string; key: string; mtime: number }>();
  for (const sub of ["new", "cur"]) {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(`${dir}/${sub}`));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    for (const e of entries) {
      if (!e.isFile || e.name.startsWith(".")) continue;
      // A message moves from new/ to cur/ (gaining ":2,<flags>") while we list: count it once.
      const key = e.name.split(":")[0];
      const path = `${dir}/${sub}/${e.name}`;
      let mtime = 0;
      try {
        mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      seen.set(key, { path, key, mtime });
    }
  }
  return [...seen.values()].sort((a, b) => a.mtime - b.mtime || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

async function readMaildir(dir: string): Promise<Uint8Array[]> {
  // Dovecot may rename a file from new/ to cur/ between listing and reading it: list again.
  for (let attempt = 0;; attempt++) {
    try {
      const files = await listMaildir(dir);
      return await Promise.all(files.map((f) => Deno.readFile(f.path)));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound) || attempt >= 10) throw e;
    }
  }
}

async function countMaildir(dir: string): Promise<number> {
  return (await listMaildir(dir)).length;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads SMTP replies (RFC 5321 §4.2: "code-text" lines until "code text"). */
class SmtpReader {
  #buf = "";
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #dec = new TextDecoder();
  constructor(conn: Deno.Conn) {
    this.#reader = conn.readable.getReader();
  }
  async reply(command: string): Promise<{ code: number; text: string }> {
    const lines: string[] = [];
    const timer = setTimeout(() => this.#reader.cancel().catch(() => {}), SMTP_REPLY_TIMEOUT_MS);
    try {
      for (;;) {
        const nl = this.#buf.indexOf("\r\n");
        if (nl >= 0) {
          const line = this.#buf.slice(0, nl);
          this.#buf = this.#buf.slice(nl + 2);
          lines.push(line);
          if (line.length < 4 || line[3] !== "-") {
            return { code: Number(line.slice(0, 3)), text: lines.join("\n") };
          }
          continue;
        }
        const { value, done } = await this.#reader.read();
        if (done) {
          throw new Error(`The SMTP server closed the connection while waiting for the reply to ${command}`);
        }
        this.#buf += this.#dec.decode(value, { stream: true });
      }
    } finally {
      clearTimeout(timer);
    }
  }
  release() {
    this.#reader.releaseLock();
  }
}

/** Sends one message over plain SMTP; returns Postfix's queue id ("250 2.0.0 Ok: queued as ID"). */
async function smtpDeliver(host: string, port: number, to: string, raw: string): Promise<string> {
  const conn = await Deno.connect({ hostname: host, port });
  conn.setNoDelay(true);
  const reader = new SmtpReader(conn);
  const writer = conn.writable.getWriter();
  const enc = new TextEncoder();
  const step = async (command: string | null, expect: number, label = command ?? "the greeting") => {
    if (command !== null) await writer.write(enc.encode(command + "\r\n"));
    const r = await reader.reply(label);
    if (Math.floor(r.code / 100) !== Math.floor(expect / 100)) {
      throw new Error(`Cannot deliver to "${to}": ${label} was answered ${JSON.stringify(r.text)}`);
    }
    return r.text;
  };
  try {
    await step(null, 220);
    await step("EHLO mailstack-helper.test", 250);
    await step("MAIL FROM:<mailstack-seed@mail.test>", 250);
    await step(`RCPT TO:<${to}>`, 250);
    await step("DATA", 354);
    // RFC 5321 §4.5.2: dot-stuff lines that start with "."; lines end in CRLF.
    const body = raw.replace(/\r?\n/g, "\r\n").replace(/^\./gm, "..");
    // Body and terminator in one write: a separate small write would wait for a delayed ACK.
    const done = await step(`${body}${body.endsWith("\r\n") ? "" : "\r\n"}.`, 250, "the end of DATA");
    await writer.write(enc.encode("QUIT\r\n")).catch(() => {});
    const id = /queued as ([0-9A-Za-z]+)/.exec(done)?.[1];
    if (!id) throw new Error(`Cannot deliver to "${to}": no queue id in ${JSON.stringify(done)}`);
    return id;
  } finally {
    reader.release();
    writer.releaseLock();
    try {
      conn.close();
    } catch {
      // already closed by the server
    }
  }
}

/**
 * Starts the stack if needed (idempotent; safe when several test processes start it at once) and
 * returns a handle to it.
 */
export async function mailStack(): Promise<MailStack> {
  const env = await ensureStarted();
  const caPem = await Deno.readTextFile(env.ca);
  const enc = encodeURIComponent;

  const url = (kind: string, address: string): string => {
    const cred = `${enc(address)}:${enc(env.password)}@${env.host}`;
    switch (kind) {
      case "imap":
        return `imap://${cred}:${env.ports.imap}/INBOX`;
      case "imaps":
        return `imaps://${cred}:${env.ports.imaps}/INBOX`;
      case "pop3":
        return `pop3://${cred}:${env.ports.pop3}`;
      case "pop3s":
        return `pop3s://${cred}:${env.ports.pop3s}`;
      case "submission":
        return `smtp://${cred}:${env.ports.submission}`;
      case "smtps":
        return `smtps://${cred}:${env.ports.smtps}`;
      case "smtp":
        return `smtp://${env.host}:${env.ports.smtp}?tls=none`;
      default:
        throw new Error(
          `Cannot make a mail stack URL of kind "${kind}": use submission, smtps, smtp, imap, imaps, pop3 or pop3s`,
        );
    }
  };

  const oauthUrl = (kind: string, address: string): string => {
    const u = new URL(url(kind, address));
    u.password = "";
    u.searchParams.set("auth", "oauth2");
    return u.toString();
  };

  const waitForMessages = async (address: string, n: number, timeoutMs = DELIVERY_TIMEOUT_MS) => {
    const dir = maildirOf(env.spool, address);
    const until = Date.now() + timeoutMs;
    for (;;) {
      const have = await countMaildir(dir);
      if (have >= n) return;
      if (Date.now() > until) {
        throw new Error(`The maildir of "${address}" holds ${have} of ${n} messages after ${timeoutMs} ms`);
      }
      await sleep(POLL_MS);
    }
  };

  return {
    host: env.host,
    caFile: env.ca,
    caPem,
    spool: env.spool,
    password: env.password,
    domains: [...env.domains],
    accounts: [...env.accounts],
    ports: { ...env.ports },
    freshAddress: (name?: string, domain?: string) => freshAddress(env.domains, name, domain),
    url,
    oauthDomain: env.oauth_domain,
    oauthIntrospectPort: env.oauth_introspect_port,
    oauthUrl,
    async restartDovecot() {
      await script("restart-dovecot");
    },
    async stopPostfix() {
      await script("stop-postfix");
    },
    async startPostfix() {
      await script("start-postfix");
    },
    rawMessages: (address) => readMaildir(maildirOf(env.spool, address)),
    async deliverRaw(to, raw, opts = {}) {
      const id = await smtpDeliver(env.host, env.ports.smtp, to, raw);
      if (opts.wait === false) return;
      // Postfix's Received header names its queue id ("with ESMTP id <ID>"): wait for that file, so
      // that, as with the maildir: transport, the message is in the box when this resolves.
      const needle = `id ${id}`;
      const dir = maildirOf(env.spool, to);
      const dec = new TextDecoder();
      const until = Date.now() + DELIVERY_TIMEOUT_MS;
      for (;;) {
        const msgs = await readMaildir(dir);
        if (msgs.some((m) => dec.decode(m.subarray(0, 4096)).includes(needle))) return;
        if (Date.now() > until) {
          throw new Error(
            `Cannot see the message to "${to}" (queue id ${id}) in its maildir after ${DELIVERY_TIMEOUT_MS} ms`,
          );
        }
        await sleep(POLL_MS);
      }
    },
    waitForMessages,
    // Disposing of a handle leaves the stack running on purpose: every test file in a run (and other
    // test processes started in parallel) shares the one stack, and starting it again costs seconds.
    // scripts/mailstack.sh stop (or stopMailStack()) ends it.
    async [Symbol.asyncDispose]() {},
  };
}

/** Stops Postfix and Dovecot (the state folder stays; `purge` removes it too). */
export async function stopMailStack(opts: { purge?: boolean } = {}): Promise<void> {
  await script("stop", ...(opts.purge ? ["--purge"] : []));
}
