/**
 * One POP3 session (RFC 1939): connect, secure (implicit TLS or STLS, RFC 2595), log in (AUTH PLAIN,
 * RFC 5034, else USER/PASS), then a snapshot of the maildrop taken with UIDL + LIST. A session sees
 * exactly the messages that were there when it logged in (RFC 1939 §8), so new mail needs a new
 * session. After any failure that leaves the stream position unknown the session is `broken`
 * and is only ever closed, never reused.
 */
import type { Account } from "../account.ts";
import { TextConnection, withTimeout } from "../connection.ts";
import { MailError } from "../errors.ts";
import { loginNotNow, passwordRefused, tokenRefused } from "../login_refusal.ts";
import { silentGreetingHint, wrongProtocol } from "../greeting.ts";
import { type AccessTokenSource, tokenFor } from "../access_token.ts";
import { bearerAbort, bearerResponse, parseBearerFailure, pickBearerMechanism } from "../sasl.ts";
import {
  type Capabilities,
  checkArgument,
  NO_CAPABILITIES,
  parseCapa,
  parseList,
  parseUidl,
} from "./commands.ts";
import { saslPlain } from "../sasl.ts";
import {
  bodyLines,
  type LineSource,
  type Multiline,
  readMultiline,
  readStatus,
  shown,
  type Status,
} from "./reply.ts";

/** A UIDL or LIST listing: ~80 bytes a message, so this allows some 200 000 messages. */
const MAX_LISTING_BYTES = 16 * 1024 * 1024;
/** Headers kept from TOP: plenty for Subject and Date. */
const MAX_HEADER_BYTES = 64 * 1024;
/** TOP output read (and dropped beyond MAX_HEADER_BYTES) before we call the server hostile. */
const MAX_TOP_READ_BYTES = 4 * 1024 * 1024;
const MAX_CAPA_BYTES = 64 * 1024;
/** RFC 5034 §4: an AUTH line with its initial response longer than this goes as a continuation. */
const MAX_AUTH_LINE = 255;

export interface SessionOptions {
  caCerts?: string[];
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  commandTimeoutMs: number;
  /** Access tokens for an `auth=oauth2` account. */
  tokens?: AccessTokenSource;
}

export interface SnapshotEntry {
  /** Message number in this session. */
  readonly n: number;
  /** Octets, as LIST reports them. */
  readonly size: number;
}

export class Pop3Session {
  readonly where: string;
  /** UIDL → number and size, in maildrop order, as the session found it at login. */
  readonly messages = new Map<string, SnapshotEntry>();
  /** UIDLs marked with DELE in this session (not yet removed: that happens only at QUIT). */
  readonly deleted = new Set<string>();
  readonly openedAt = Date.now();
  capabilities: Capabilities = NO_CAPABILITIES;
  #conn: TextConnection;
  #opts: SessionOptions;
  #broken = false;
  #ended = false;

  private constructor(conn: TextConnection, opts: SessionOptions) {
    this.#conn = conn;
    this.#opts = opts;
    this.where = conn.where;
  }

  /** Connects, logs in and takes the snapshot; throws MailError ("tls", "auth", "connect", …) otherwise. */
  static async open(account: Account, opts: SessionOptions): Promise<Pop3Session> {
    checkArgument(account.user, "user name");
    if (account.auth === "password") checkArgument(account.password, "password");
    const conn = await TextConnection.open({
      host: account.host,
      port: account.port,
      implicitTls: account.tls === "implicit",
      caCerts: opts.caCerts,
      connectTimeoutMs: opts.connectTimeoutMs,
    });
    const session = new Pop3Session(conn, opts);
    try {
      await session.#start(account);
    } catch (err) {
      session.close();
      throw err;
    }
    return session;
  }

  /** False once the connection failed, timed out, desynchronised or ended. */
  get usable(): boolean {
    return !this.#broken && !this.#ended && !this.#conn.closed;
  }

  /** Every UIDL the snapshot held, including those marked deleted since. */
  get ids(): ReadonlySet<string> {
    return new Set(this.messages.keys());
  }

  async #start(account: Account): Promise<void> {
    let greeting: Status;
    try {
      greeting = await this.#status(this.#opts.greetingTimeoutMs);
    } catch (err) {
      // pop3:// on the IMAP or SMTP port: say which server it is, not how its greeting fails to parse.
      const other = err instanceof MailError && err.response
        ? wrongProtocol(this.where, "POP3", err.response)
        : undefined;
      if (other) throw other;
      const hint = silentGreetingHint(this.#conn.opts.port, this.#conn.opts.implicitTls);
      if (err instanceof MailError && err.code === "timeout" && hint) {
        throw new MailError(`${err.message.replace(/\.$/, "")}${hint}.`, "timeout", { cause: err });
      }
      throw err;
    }
    if (greeting.kind !== "+OK") {
      throw new MailError(`${this.where} refused the POP3 session: "${shown(greeting.line)}".`, "temporary", {
        response: shown(greeting.line),
      });
    }
    let caps = await this.#capa();
    if (account.tls === "starttls") {
      if (!caps.stls) {
        // RFC 2595 §4: without STLS the only way on is clear text, and the password must not go that way.
        throw new MailError(
          `${this.where} does not offer STLS, so the password would cross the network unencrypted; not logging in. ` +
            `Use pop3s:// (port 995), or add ?tls=none only on a network you trust.`,
          "tls",
          { command: "CAPA", reason: "no_starttls" },
        );
      }
      const st = await this.#command("STLS");
      if (st.kind !== "+OK") {
        // It offered STLS a moment ago: a refusal now is the server's state (Dovecot shutting down
        // for a restart answers "-ERR Shutting down"), not its configuration. Tried again later,
        // never in clear.
        throw new MailError(
          `${this.where} refused STLS though it offers it: "${
            shown(st.line)
          }"; not logging in now, trying again later.`,
          "temporary",
          { command: "STLS", response: shown(st.line), reason: "starttls_refused" },
        );
      }
      await this.#io(() => this.#conn.startTls());
      // RFC 2595 §4: capabilities seen before the TLS handshake may have been forged; ask again.
      caps = await this.#capa();
    }
    this.capabilities = caps;
    await this.#login(account, caps);
    await this.#snapshot();
  }

  async #capa(): Promise<Capabilities> {
    const r = await this.#multi("CAPA", { maxBytes: MAX_CAPA_BYTES, what: "the CAPA listing" });
    // RFC 2449 §5: a server that predates CAPA answers -ERR; assume only RFC 1939 commands.
    return r.status.kind === "+OK" ? parseCapa(bodyLines(r.body!.data)) : NO_CAPABILITIES;
  }

  async #login(account: Account, caps: Capabilities): Promise<void> {
    if (account.auth === "oauth2") return await this.#bearerLogin(account, caps);
    const user = account.user;
    if (caps.sasl.has("PLAIN")) {
      const hidden = "AUTH PLAIN ***";
      let st = await this.#command(`AUTH PLAIN ${saslPlain(user, account.password)}`, hidden);
      if (st.kind === "+") {
        // RFC 5034 §4: a server that ignores the initial response asks with an empty challenge.
        st = await this.#command(saslPlain(user, account.password), "***");
      }
      if (st.kind === "+") {
        this.#break();
        throw new MailError(`${this.where} sent a second SASL challenge to AUTH PLAIN.`, "protocol", {
          command: hidden,
          response: shown(st.line),
        });
      }
      if (st.kind !== "+OK") throw this.#loginError(user, st, hidden, "password", caps);
      return;
    }
    const u = await this.#command(`USER ${user}`);
    if (u.kind !== "+OK") throw this.#loginError(user, u, `USER ${user}`, "user", caps);
    const p = await this.#command(`PASS ${account.password}`, "PASS ***");
    if (p.kind !== "+OK") throw this.#loginError(user, p, "PASS ***", "password", caps);
  }

  /**
   * AUTH OAUTHBEARER / XOAUTH2 (RFC 5034 §4, RFC 7628 §3). A refused token is tried once more with a
   * renewed one: the provider may have revoked it before its stated expiry.
   */
  async #bearerLogin(account: Account, caps: Capabilities): Promise<void> {
    const mechanism = pickBearerMechanism(caps.sasl);
    if (!mechanism) {
      throw new MailError(
        `${this.where} offers no OAuth2 login (SASL OAUTHBEARER or XOAUTH2); use a password in the POP3 URL instead of auth=oauth2.`,
        "auth",
        { command: "CAPA" },
      );
    }
    const hidden = `AUTH ${mechanism} ***`;
    for (const renew of [false, true]) {
      const token = await tokenFor(account, this.#opts.tokens, { renew });
      const response = bearerResponse(mechanism, account.user, token, account.host, account.port);
      const inline = `AUTH ${mechanism} ${response}`.length <= MAX_AUTH_LINE;
      let st = await this.#command(inline ? `AUTH ${mechanism} ${response}` : `AUTH ${mechanism}`, hidden);
      if (st.kind === "+" && (!inline && st.text.trim() === "")) {
        st = await this.#command(response, "***");
      }
      let failure: ReturnType<typeof parseBearerFailure>;
      if (st.kind === "+") {
        // RFC 7628 §3.2.2: a challenge after our response is the error report; answer with the
        // dummy response so the server can end the exchange with -ERR.
        failure = parseBearerFailure(st.text);
        st = await this.#command(bearerAbort(mechanism), "(abort)");
      }
      if (st.kind === "+OK") return;
      if (st.kind === "+") {
        this.#break();
        throw new MailError(`${this.where} sent another SASL challenge to AUTH ${mechanism}.`, "protocol", {
          command: hidden,
          response: shown(st.line),
        });
      }
      const temporary = st.code === "SYS/TEMP" || st.code === "IN-USE" || st.code === "LOGIN-DELAY";
      if (temporary) throw this.#loginError(account.user, st, hidden, "password", caps);
      if (!renew) continue;
      throw tokenRefused(this.where, account.user, mechanism, failure, {
        command: hidden,
        response: shown(st.line),
      });
    }
  }

  #loginError(
    user: string,
    st: Status,
    command: string,
    refused: "user" | "password",
    caps: Capabilities,
  ): MailError {
    const response = shown(st.line);
    // RFC 2449 §8.1 / RFC 3206: these say "not now", not "wrong password"; and a server that
    // promises [AUTH] on every credentials failure (AUTH-RESP-CODE) and leaves it out is in trouble
    // itself (restarting), so that is "not now" too.
    if (
      st.code === "SYS/TEMP" || st.code === "IN-USE" || st.code === "LOGIN-DELAY" ||
      (caps.authRespCode && st.code !== "AUTH" && st.code !== "SYS/PERM")
    ) {
      return loginNotNow(this.where, user, "the server is busy or the mailbox is in use", shown(st.text), {
        command,
        response,
      });
    }
    if (refused === "user") {
      return new MailError(
        `Cannot log in to ${this.where} as "${user}": the server refused the user name ("${
          shown(st.text)
        }").`,
        "auth",
        { command, response },
      );
    }
    return passwordRefused(this.where, user, { command, response });
  }

  async #snapshot(): Promise<void> {
    const uidl = await this.#multi("UIDL", { maxBytes: MAX_LISTING_BYTES, what: "the UIDL listing" });
    if (uidl.status.kind !== "+OK") {
      throw new MailError(
        `${this.where} does not support UIDL ("${
          shown(uidl.status.line)
        }"); mailmeet needs it to tell messages apart between sessions.`,
        "protocol",
        { command: "UIDL", response: shown(uidl.status.line) },
      );
    }
    const list = await this.#multi("LIST", { maxBytes: MAX_LISTING_BYTES, what: "the LIST listing" });
    if (list.status.kind !== "+OK") throw this.#refused("LIST", list.status);
    const uids = parseUidl(bodyLines(uidl.body!.data));
    const sizes = parseList(bodyLines(list.body!.data));
    for (const n of [...uids.keys()].sort((a, b) => a - b)) {
      const uid = uids.get(n)!;
      const size = sizes.get(n);
      if (size === undefined || this.messages.has(uid)) {
        this.#break();
        throw new MailError(
          `${this.where} sent inconsistent UIDL and LIST listings (message ${n}, uid "${uid}").`,
          "protocol",
          { command: "UIDL" },
        );
      }
      this.messages.set(uid, { n, size });
    }
  }

  /** The header block of message n (TOP n 0, RFC 1939 §7), at most MAX_HEADER_BYTES of it. */
  async top(n: number): Promise<Uint8Array> {
    const r = await this.#multi(`TOP ${n} 0`, {
      maxBytes: MAX_TOP_READ_BYTES,
      keepBytes: MAX_HEADER_BYTES,
      what: `the headers of message ${n}`,
    });
    if (r.status.kind !== "+OK") {
      throw new MailError(
        `${this.where} refused TOP ${n} 0 ("${
          shown(r.status.line)
        }"); mailmeet reads subjects with TOP so it never downloads mail that is not its own.`,
        "protocol",
        { command: `TOP ${n} 0`, response: shown(r.status.line) },
      );
    }
    return r.body!.data;
  }

  /** The whole message n, dot-unstuffed; MailError "too_large" (and a broken session) past maxBytes. */
  async retr(n: number, maxBytes: number, what: string): Promise<Uint8Array> {
    const r = await this.#multi(`RETR ${n}`, { maxBytes, what });
    if (r.status.kind !== "+OK") throw this.#refused(`RETR ${n}`, r.status);
    return r.body!.data;
  }

  /** DELE (RFC 1939 §5): marks only; the server removes the message if this session ends with QUIT. */
  async dele(uid: string): Promise<void> {
    const entry = this.messages.get(uid);
    if (!entry || this.deleted.has(uid)) return;
    const st = await this.#command(`DELE ${entry.n}`);
    if (st.kind !== "+OK") {
      throw new MailError(
        `Cannot mark message ${uid} for deletion on ${this.where}: the server replied "${shown(st.line)}".`,
        "protocol",
        { command: `DELE ${entry.n}`, response: shown(st.line) },
      );
    }
    this.deleted.add(uid);
  }

  /** RSET (RFC 1939 §5): unmarks every message this session marked. */
  async rset(timeoutMs?: number): Promise<Status> {
    const st = await this.#command("RSET", "RSET", timeoutMs);
    if (st.kind === "+OK") this.deleted.clear();
    return st;
  }

  /**
   * QUIT (RFC 1939 §6): from the TRANSACTION state this enters UPDATE, where the server removes the
   * marked messages and answers +OK only if all of them went. The session is over either way.
   */
  async quit(timeoutMs?: number): Promise<Status> {
    try {
      return await this.#command("QUIT", "QUIT", timeoutMs);
    } finally {
      this.#ended = true;
      this.#conn.close();
    }
  }

  /** Drops the connection: without QUIT the server never enters UPDATE, so nothing is removed. */
  close(): void {
    this.#ended = true;
    this.#conn.close();
  }

  #refused(command: string, st: Status): MailError {
    return new MailError(`${this.where} refused ${command}: "${shown(st.line)}".`, "protocol", {
      command,
      response: shown(st.line),
    });
  }

  /** Sends one command line and reads its status line. `shownAs` is what errors may show (no secrets). */
  async #command(line: string, shownAs = line, timeoutMs = this.#opts.commandTimeoutMs): Promise<Status> {
    if (!this.usable) {
      throw new MailError(`The POP3 session with ${this.where} is no longer usable.`, "closed", {
        command: shownAs,
      });
    }
    await this.#io(() =>
      withTimeout(
        this.#conn.write(`${line}\r\n`),
        timeoutMs,
        `${this.where} did not take the ${shownAs.split(" ")[0]} command within ${
          Math.round(timeoutMs / 1000)
        } s.`,
      )
    );
    return await this.#status(timeoutMs, shownAs);
  }

  async #status(timeoutMs: number, shownAs?: string): Promise<Status> {
    return await this.#io(() => readStatus(this.#lines(timeoutMs)), shownAs);
  }

  async #multi(
    line: string,
    opts: { maxBytes: number; keepBytes?: number; what: string },
  ): Promise<{ status: Status; body?: Multiline }> {
    const status = await this.#command(line);
    if (status.kind === "-ERR") return { status };
    if (status.kind !== "+OK") {
      this.#break();
      throw new MailError(`${this.where} answered ${line} with a SASL continuation.`, "protocol", {
        command: line,
        response: shown(status.line),
      });
    }
    const body = await this.#io(() => readMultiline(this.#lines(this.#opts.commandTimeoutMs), opts), line);
    return { status, body };
  }

  #lines(timeoutMs: number): LineSource {
    return { readLineBytes: () => this.#conn.readLineBytes(timeoutMs) };
  }

  /** Runs one exchange; any failure in it leaves the stream position unknown, so the session is done. */
  async #io<T>(fn: () => Promise<T>, command?: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.#break();
      if (err instanceof MailError && command && err.command === undefined) {
        throw new MailError(err.message, err.code, {
          command,
          response: err.response,
          reason: err.reason,
          cause: err.cause ?? err,
        });
      }
      throw err;
    }
  }

  #break(): void {
    this.#broken = true;
    this.#conn.close();
  }
}
