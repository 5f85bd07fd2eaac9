/**
 * One IMAP connection (RFC 3501 / RFC 9051): the greeting, STARTTLS, CAPABILITY, login, and then
 * tagged commands. A single reader loop takes every response off the wire and routes it:
 * - a tagged status completes the command with that tag (the pending-command map, as imapflow);
 * - a "+" continuation goes to the command that is waiting to send a literal, a SASL response or
 *   to enter IDLE;
 * - untagged data is collected by every command in flight and handed to `onUntagged`, because
 *   the server may send EXISTS, EXPUNGE, FETCH or BYE at any time (RFC 3501 §7, §5.2).
 * Every command has an inactivity timeout; when it fires the stream position is unknown, so the
 * connection is closed and every command in flight fails. After any failure the client is dead for
 * good and only ever shut down; the mailbox opens a new one.
 */
import type { Account } from "../account.ts";
import { TextConnection } from "../connection.ts";
import { MailError } from "../errors.ts";
import { loginNotNow, passwordRefused, tokenRefused } from "../login_refusal.ts";
import { type CommandPart, displayParts, quoteBytes, stringArg } from "./encode.ts";
import { saslPlain } from "../sasl.ts";
import { DEFAULT_MAX_LITERAL, DEFAULT_MAX_RESPONSE, MAX_IMAP_LINE, ResponseReader } from "./framing.ts";
import {
  capabilityNames,
  type ContinuationResponse,
  type ImapResponse,
  parseResponse,
  preview,
  type StatusResponse,
} from "./parser.ts";
import { silentGreetingHint, wrongProtocol } from "../greeting.ts";
import { type AccessTokenSource, tokenFor } from "../access_token.ts";
import {
  bearerAbort,
  type BearerFailure,
  type BearerMechanism,
  bearerResponse,
  parseBearerFailure,
  pickBearerMechanism,
} from "../sasl.ts";

export interface ClientOptions {
  caCerts?: string[];
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  commandTimeoutMs: number;
  /** Access tokens for an `auth=oauth2` account. */
  tokens?: AccessTokenSource;
}

export interface CommandOptions {
  /** What errors and logs show instead of the wire text (commands that carry credentials). */
  display?: string;
  /** Resolve with a NO or BAD instead of throwing (login, SELECT, IDLE). */
  acceptNo?: boolean;
  /** The largest literal this command may bring back (a message body). */
  maxLiteral?: number;
  /** Inactivity timeout for this command (IDLE waits much longer than a FETCH). */
  timeoutMs?: number;
  /** Called for each "+" continuation (AUTHENTICATE challenge, IDLE accepted). */
  onContinue?: (r: ContinuationResponse) => void;
  /** Stop reading after this command's tagged response: STARTTLS hands the socket to the TLS handshake. */
  stopReading?: boolean;
}

export interface CommandResult {
  readonly tagged: StatusResponse;
  readonly untagged: readonly ImapResponse[];
}

/** The command in flight that a continuation belongs to, with its own timer. */
interface Pending {
  readonly tag: string;
  readonly display: string;
  readonly untagged: ImapResponse[];
  readonly maxLiteral: number;
  readonly stopReading: boolean;
  timeoutMs: number;
  timer?: ReturnType<typeof setTimeout>;
  onContinue?: (r: ContinuationResponse) => void;
  settled: boolean;
  /** Resolves when the command ends either way; never rejects (for races while sending). */
  readonly ended: Promise<void>;
  resolve(t: StatusResponse): void;
  reject(e: MailError): void;
}

/** LITERAL- (RFC 7888 §4) allows the non-synchronizing form only up to this size. */
const LITERAL_MINUS_MAX = 4096;

export interface IdleHandle {
  /** Sends DONE and waits for the tagged OK that ends IDLE (RFC 2177 §3). */
  done(): Promise<void>;
}

export class ImapClient {
  readonly where: string;
  /** Upper-cased capability names; replaced whenever the server announces them again. */
  capabilities = new Set<string>();
  /** Every untagged response, after the client's own bookkeeping (the mailbox tracks EXISTS here). */
  onUntagged?: (r: ImapResponse) => void;
  /** Resolves with the reason once the connection is unusable. */
  readonly dead: Promise<MailError>;

  #conn: TextConnection;
  #opts: ClientOptions;
  #framer: ResponseReader;
  #pending = new Map<string, Pending>();
  #tagSeq = 0;
  #loop: Promise<void> = Promise.resolve();
  #failure?: MailError;
  #markDead!: (e: MailError) => void;
  #greeting?: {
    resolve(r: ImapResponse): void;
    reject(e: MailError): void;
    timer: ReturnType<typeof setTimeout>;
  };
  #bye?: string;
  /** Strings that must never appear in an error: the password and its SASL encoding. */
  #secrets: string[] = [];

  private constructor(conn: TextConnection, opts: ClientOptions) {
    this.#conn = conn;
    this.#opts = opts;
    this.where = conn.where;
    this.dead = new Promise((r) => (this.#markDead = r));
    this.#framer = new ResponseReader(conn.reader, { maxLine: MAX_IMAP_LINE }, () => this.#progress());
  }

  /**
   * Connects per `account.tls`, reads the greeting, upgrades with STARTTLS when asked (refusing to
   * go on in clear text), and logs in. Throws MailError "tls", "auth", "connect", "timeout", …
   */
  static async connect(account: Account, opts: ClientOptions): Promise<ImapClient> {
    if (!account.user) {
      throw new MailError(
        `The IMAP URL for ${account.host} names no user; use imaps://USER:PASS@host/INBOX.`,
        "config",
      );
    }
    if (account.user.includes("\0") || account.password.includes("\0")) {
      throw new MailError(
        "The IMAP user name or password contains a NUL byte, which cannot be sent.",
        "config",
      );
    }
    const conn = await TextConnection.open({
      host: account.host,
      port: account.port,
      implicitTls: account.tls === "implicit",
      caCerts: opts.caCerts,
      connectTimeoutMs: opts.connectTimeoutMs,
      maxLine: MAX_IMAP_LINE,
    });
    const client = new ImapClient(conn, opts);
    if (account.password) client.#secrets.push(account.password, saslPlain(account.user, account.password));
    try {
      await client.#handshake(account);
    } catch (err) {
      await client.shutdown();
      throw err;
    }
    return client;
  }

  /** False once the connection failed, timed out, was closed or desynchronised. */
  get usable(): boolean {
    return this.#failure === undefined;
  }

  /** Why the client is dead, if it is. */
  get failure(): MailError | undefined {
    return this.#failure;
  }

  /** Replaces the password (and its encodings) in server text before it reaches an error or a log. */
  scrub(text: string): string {
    let out = text;
    for (const s of this.#secrets) if (s) out = out.replaceAll(s, "***");
    return out;
  }

  /**
   * Sends one tagged command and waits for its completion. A NO or BAD throws MailError "protocol"
   * (or "temporary" for [UNAVAILABLE]/[INUSE]) unless `acceptNo`.
   */
  async command(parts: string | readonly CommandPart[], opts: CommandOptions = {}): Promise<CommandResult> {
    if (this.#failure) throw this.#failure;
    const list = typeof parts === "string" ? [parts] : parts;
    const tag = `A${++this.#tagSeq}`;
    const display = opts.display ?? displayParts(list);
    let resolve!: (t: StatusResponse) => void, reject!: (e: MailError) => void, end!: () => void;
    const done = new Promise<StatusResponse>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const p: Pending = {
      tag,
      display,
      untagged: [],
      maxLiteral: opts.maxLiteral ?? DEFAULT_MAX_LITERAL,
      stopReading: opts.stopReading ?? false,
      timeoutMs: opts.timeoutMs ?? this.#opts.commandTimeoutMs,
      onContinue: opts.onContinue,
      settled: false,
      ended: new Promise<void>((r) => (end = r)),
      resolve: (t) => {
        p.settled = true;
        end();
        resolve(t);
      },
      reject: (e) => {
        p.settled = true;
        end();
        reject(e);
      },
    };
    this.#pending.set(tag, p);
    this.#arm(p);
    // The send may fail half-way; the failure then reaches `done` through #fail.
    await this.#send(p, list).catch((err) => this.#fail(err));
    const tagged = await done;
    if (tagged.status !== "OK" && !opts.acceptNo) throw this.refusal(display, tagged);
    return { tagged, untagged: p.untagged };
  }

  /** The MailError for a NO/BAD answer to `display`. */
  refusal(display: string, tagged: StatusResponse): MailError {
    const text = this.scrub(tagged.text);
    const busy = tagged.code && ["UNAVAILABLE", "INUSE", "LIMIT"].includes(tagged.code.name);
    return new MailError(
      `${this.where} answered ${tagged.status} to ${display.split(" ").slice(0, 2).join(" ")}: "${text}".`,
      busy ? "temporary" : "protocol",
      { command: display, response: `${tagged.status} ${text}` },
    );
  }

  /**
   * Enters IDLE (RFC 2177) and returns once the server accepted with "+". Until then the usual
   * command timeout holds (a connection gone silent gives no "+"); after it, the inactivity timeout
   * becomes `timeoutMs` (the IDLE re-issue interval plus a margin) until done() is called.
   * A NO/BAD answer throws MailError "protocol".
   */
  async idle(timeoutMs: number): Promise<IdleHandle> {
    let accepted!: () => void;
    const started = new Promise<null>((r) => (accepted = () => r(null)));
    const finished = this.command("IDLE", {
      acceptNo: true,
      onContinue: () => {
        const pending = this.#pending.get(tag);
        if (pending && !pending.settled) {
          pending.timeoutMs = timeoutMs;
          this.#arm(pending);
        }
        accepted();
      },
    });
    // command() registered its tag synchronously, before its first await.
    const tag = `A${this.#tagSeq}`;
    finished.catch(() => {}); // a drop while idling is seen through `dead`; done() rethrows it
    const early = await Promise.race([started, finished]);
    if (early) throw this.refusal("IDLE", early.tagged);
    return {
      done: async () => {
        const pending = this.#pending.get(tag);
        if (pending && !pending.settled) {
          pending.timeoutMs = this.#opts.commandTimeoutMs;
          this.#arm(pending);
          await this.#write("DONE\r\n").catch((err) => this.#fail(err));
        }
        const r = await finished;
        if (r.tagged.status !== "OK") throw this.refusal("IDLE", r.tagged);
      },
    };
  }

  /** LOGOUT with a bounded wait, then close (RFC 3501 §6.1.3). Never throws. */
  async logout(timeoutMs: number): Promise<void> {
    if (!this.#failure) {
      try {
        await this.command("LOGOUT", { timeoutMs, acceptNo: true });
      } catch {
        // closing anyway
      }
    }
    await this.shutdown();
  }

  /** Closes at once; commands in flight fail with "closed". */
  async shutdown(): Promise<void> {
    this.#fail(new MailError(`The connection to ${this.where} was closed.`, "closed"));
    await this.#loop;
  }

  /* ---------- session setup ---------- */

  async #handshake(account: Account): Promise<void> {
    this.#startLoop();
    const greeting = await this.#awaitGreeting();
    if (greeting.kind !== "status" || greeting.tag !== null) {
      throw new MailError(`${this.where} did not greet like an IMAP server.`, "protocol");
    }
    if (greeting.status === "BYE") {
      throw new MailError(`${this.where} refused the IMAP session: "${greeting.text}".`, "temporary", {
        response: greeting.text,
      });
    }
    if (greeting.status !== "OK" && greeting.status !== "PREAUTH") {
      throw new MailError(`${this.where} greeted with ${greeting.status}: "${greeting.text}".`, "protocol");
    }
    if (this.capabilities.size === 0) await this.#refreshCapabilities();
    if (account.tls === "starttls") {
      if (greeting.status === "PREAUTH") {
        // RFC 3501 §6.2.1: STARTTLS is only valid before authentication, so this session stays in clear.
        throw new MailError(
          `${this.where} logged us in before TLS (PREAUTH), so the mailbox would be read unencrypted; not continuing. ` +
            `Use imaps:// (port 993), or add ?tls=none only on a network you trust.`,
          "tls",
        );
      }
      if (!this.capabilities.has("STARTTLS")) {
        throw new MailError(
          `${this.where} does not offer STARTTLS, so the password would cross the network unencrypted; not logging in. ` +
            `Use imaps:// (port 993), or add ?tls=none only on a network you trust.`,
          "tls",
          { command: "CAPABILITY", reason: "no_starttls" },
        );
      }
      const r = await this.command("STARTTLS", { acceptNo: true, stopReading: true });
      if (r.tagged.status !== "OK") {
        // It offered STARTTLS a moment ago: a refusal now is the server's state (shutting down,
        // overloaded), not its configuration. Tried again later, never in clear.
        throw new MailError(
          `${this.where} refused STARTTLS though it offers it: "${r.tagged.text}"; not logging in now, trying again later.`,
          "temporary",
          { command: "STARTTLS", response: r.tagged.text, reason: "starttls_refused" },
        );
      }
      await this.#loop;
      try {
        await this.#conn.startTls();
      } catch (err) {
        this.#fail(err);
        throw err;
      }
      this.#startLoop();
      // RFC 3501 §6.2.1: capabilities seen before TLS may have been forged; ask again.
      await this.#refreshCapabilities();
    }
    if (greeting.status === "OK") await this.#login(account);
  }

  #awaitGreeting(): Promise<ImapResponse> {
    return new Promise((resolve, reject) => {
      if (this.#failure) return reject(this.#failure);
      const timer = setTimeout(
        () =>
          this.#fail(
            new MailError(
              `${this.where} sent no IMAP greeting within ${
                Math.round(this.#opts.greetingTimeoutMs / 1000)
              } s${silentGreetingHint(this.#conn.opts.port, this.#conn.opts.implicitTls)}.`,
              "timeout",
            ),
          ),
        this.#opts.greetingTimeoutMs,
      );
      this.#greeting = { resolve, reject, timer };
    });
  }

  async #refreshCapabilities(): Promise<void> {
    this.capabilities = new Set();
    await this.command("CAPABILITY");
  }

  async #login(account: Account): Promise<void> {
    if (account.auth === "oauth2") return await this.#bearerLogin(account);
    const { user, password } = account;
    let display: string;
    let result: CommandResult;
    if (this.capabilities.has("AUTH=PLAIN")) {
      // RFC 4616 PLAIN, preferred: one round trip with SASL-IR (RFC 4959), and no quoting rules.
      const response = saslPlain(user, password);
      display = "AUTHENTICATE PLAIN ***";
      let answered = false;
      const reply = () => {
        // A second challenge to PLAIN makes no sense: cancel with "*" (RFC 3501 §6.2.2).
        const line = answered ? "*\r\n" : `${response}\r\n`;
        answered = true;
        this.#write(line).catch((err) => this.#fail(err));
      };
      if (this.capabilities.has("SASL-IR")) {
        answered = true;
        result = await this.command(`AUTHENTICATE PLAIN ${response}`, {
          display,
          acceptNo: true,
          onContinue: reply,
        });
      } else {
        result = await this.command("AUTHENTICATE PLAIN", { display, acceptNo: true, onContinue: reply });
      }
    } else if (this.capabilities.has("LOGINDISABLED")) {
      throw new MailError(
        `${this.where} does not allow LOGIN (LOGINDISABLED) and offers no AUTHENTICATE PLAIN; cannot log in.`,
        "auth",
        { command: "CAPABILITY" },
      );
    } else {
      display = `LOGIN ${quoteBytes(new TextEncoder().encode(user.replace(/[^\x20-\x7e]/g, "?")))} ***`;
      result = await this.command(["LOGIN ", stringArg(user), " ", stringArg(password)], {
        display,
        acceptNo: true,
      });
    }
    if (result.tagged.status !== "OK") throw this.#loginError(user, result.tagged, display);
    // RFC 3501 §6.2.3 / RFC 9051 §6.2.3: capabilities may change after login; the OK may carry them.
    if (result.tagged.code?.name !== "CAPABILITY") await this.#refreshCapabilities();
  }

  /**
   * AUTHENTICATE OAUTHBEARER / XOAUTH2 (RFC 7628 §3, RFC 3501 §6.2.2). A refused token is tried once
   * more with a renewed one: the provider may have revoked it before its stated expiry.
   */
  async #bearerLogin(account: Account): Promise<void> {
    const offered = new Set(
      [...this.capabilities].filter((c) => c.startsWith("AUTH=")).map((c) => c.slice(5)),
    );
    const mechanism = pickBearerMechanism(offered);
    if (!mechanism) {
      throw new MailError(
        `${this.where} offers no OAuth2 login (AUTH=OAUTHBEARER or AUTH=XOAUTH2); use a password in the IMAP URL instead of auth=oauth2.`,
        "auth",
        { command: "CAPABILITY" },
      );
    }
    for (const renew of [false, true]) {
      const token = await tokenFor(account, this.#opts.tokens, { renew });
      const response = bearerResponse(mechanism, account.user, token, account.host, account.port);
      this.#secrets.push(token, response);
      const display = `AUTHENTICATE ${mechanism} ***`;
      let answered = this.capabilities.has("SASL-IR");
      let failure: BearerFailure | undefined;
      const reply = (r: ContinuationResponse) => {
        // RFC 7628 §3.2.2: after our response, a challenge is the server's error report; we answer
        // with the dummy response and the server then completes with NO.
        const line = answered ? bearerAbort(mechanism) : response;
        if (answered) failure = parseBearerFailure(r.text) ?? {};
        answered = true;
        this.#write(`${line}\r\n`).catch((err) => this.#fail(err));
      };
      const result = await this.command(
        this.capabilities.has("SASL-IR")
          ? `AUTHENTICATE ${mechanism} ${response}`
          : `AUTHENTICATE ${mechanism}`,
        { display, acceptNo: true, onContinue: reply },
      );
      if (result.tagged.status === "OK") {
        if (result.tagged.code?.name !== "CAPABILITY") await this.#refreshCapabilities();
        return;
      }
      const tokenRefused = result.tagged.status === "NO" && isCredentialsRefusal(result.tagged);
      if (!tokenRefused || renew) {
        throw this.#bearerError(account.user, mechanism, result.tagged, failure, display);
      }
    }
  }

  #bearerError(
    user: string,
    mechanism: BearerMechanism,
    tagged: StatusResponse,
    failure: BearerFailure | undefined,
    command: string,
  ): MailError {
    if (tagged.status === "BAD" || !isCredentialsRefusal(tagged)) {
      return this.#loginError(user, tagged, command);
    }
    const response = `${tagged.status} ${this.scrub(tagged.text)}`;
    return tokenRefused(this.where, user, mechanism, failure, { command, response });
  }

  #loginError(user: string, tagged: StatusResponse, command: string): MailError {
    const text = this.scrub(tagged.text);
    const response = `${tagged.status} ${text}`;
    const code = tagged.code?.name;
    if (tagged.status === "BAD") {
      return new MailError(`${this.where} did not understand the login command: "${text}".`, "protocol", {
        command,
        response,
      });
    }
    // RFC 5530 §3 response codes tell "not now" and "not like this" from "wrong password".
    if (code === "UNAVAILABLE" || code === "INUSE" || code === "LIMIT") {
      return loginNotNow(this.where, user, "the server is busy", text, { command, response });
    }
    if (code === "PRIVACYREQUIRED") {
      return new MailError(
        `Cannot log in to ${this.where} as "${user}": the server requires an encrypted connection. Use imaps:// or STARTTLS.`,
        "tls",
        { command, response, reason: "needs_encryption" },
      );
    }
    return passwordRefused(this.where, user, { command, response });
  }

  /* ---------- wire ---------- */

  async #send(p: Pending, parts: readonly CommandPart[]): Promise<void> {
    let text = `${p.tag} `;
    for (const part of parts) {
      if (typeof part === "string") {
        text += part;
        continue;
      }
      const n = part.literal.length;
      const nonSync = this.capabilities.has("LITERAL+") ||
        (this.capabilities.has("LITERAL-") && n <= LITERAL_MINUS_MAX);
      if (nonSync) {
        // RFC 7888: {n+} needs no "+" round trip.
        await this.#write(concat(text + `{${n}+}\r\n`, part.literal));
      } else {
        // RFC 3501 §7.5: announce, wait for "+", then send the bytes; a NO instead ends the command.
        const own = p.onContinue;
        let go!: () => void;
        const ready = new Promise<void>((r) => (go = r));
        p.onContinue = () => go();
        await this.#write(text + `{${n}}\r\n`);
        await Promise.race([ready, p.ended]);
        p.onContinue = own;
        if (p.settled) return;
        await this.#write(part.literal);
      }
      text = "";
    }
    await this.#write(text + "\r\n");
  }

  #write(data: string | Uint8Array): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    return this.#conn.write(data);
  }

  #startLoop(): void {
    this.#loop = this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const raw = await this.#framer.read(() => this.#limits());
        if (this.#failure) return;
        if (raw === null) {
          const why = this.#bye ? ` ("${this.scrub(this.#bye)}")` : "";
          throw new MailError(`${this.where} closed the connection${why}.`, "closed");
        }
        if (this.#greeting) {
          // imaps:// on the SMTP port and the like: say which server it is, not how its line fails to parse.
          const other = wrongProtocol(this.where, "IMAP", preview(raw));
          if (other) throw other;
        }
        if (this.#dispatch(parseResponse(raw))) return;
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  /** Literal caps follow the commands in flight: only a body FETCH may bring a big one. */
  #limits() {
    let maxLiteral = DEFAULT_MAX_LITERAL;
    for (const p of this.#pending.values()) maxLiteral = Math.max(maxLiteral, p.maxLiteral);
    return { maxLiteral, maxResponse: Math.max(DEFAULT_MAX_RESPONSE, maxLiteral + MAX_IMAP_LINE) };
  }

  /** Routes one response; true when the reader must stop (after STARTTLS's OK). */
  #dispatch(r: ImapResponse): boolean {
    if (r.kind === "continue") {
      const waiting = [...this.#pending.values()].reverse().find((p) => p.onContinue);
      waiting?.onContinue?.(r);
      return false;
    }
    if (r.kind === "status" && r.tag !== null) {
      const p = this.#pending.get(r.tag);
      if (!p) {
        // A tag we never sent: the stream is out of step with us, so nothing after it can be trusted.
        throw new MailError(
          `${this.where} answered a command we did not send (tag ${r.tag.slice(0, 20)}).`,
          "protocol",
        );
      }
      if (r.code?.name === "CAPABILITY") this.capabilities = capabilityNames(r.code);
      this.#pending.delete(r.tag);
      clearTimeout(p.timer);
      p.resolve(r);
      return p.stopReading;
    }
    if (r.kind === "status") {
      if (r.code?.name === "CAPABILITY") this.capabilities = capabilityNames(r.code);
      if (r.status === "BYE") this.#bye = r.text;
    } else if (r.name === "CAPABILITY") {
      this.capabilities = capabilityNames(r);
    }
    if (r.kind === "status" && r.status === "BYE" && !this.#greeting) {
      const loggingOut = [...this.#pending.values()].some((p) => p.display === "LOGOUT");
      if (!loggingOut) {
        // RFC 3501 §7.1.5: the server is closing; do not wait for the socket to say so too.
        throw new MailError(`${this.where} ended the session: "${this.scrub(r.text)}".`, "closed", {
          response: `BYE ${this.scrub(r.text)}`,
        });
      }
    }
    if (this.#greeting) {
      const g = this.#greeting;
      this.#greeting = undefined;
      clearTimeout(g.timer);
      g.resolve(r);
      return false;
    }
    for (const p of this.#pending.values()) p.untagged.push(r);
    this.onUntagged?.(r);
    return false;
  }

  /** Any bytes from the server show it is alive: restart the inactivity timers. */
  #progress(): void {
    for (const p of this.#pending.values()) this.#arm(p);
  }

  #arm(p: Pending): void {
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      this.#fail(
        new MailError(
          `${this.where} did not answer ${p.display.split(" ").slice(0, 2).join(" ")} within ${
            Math.round(p.timeoutMs / 1000)
          } s.`,
          "timeout",
          { command: p.display },
        ),
      );
    }, p.timeoutMs);
  }

  /** The one way a client dies: close the socket, fail everything in flight, remember why. */
  #fail(err: unknown): void {
    if (this.#failure) return;
    const e = err instanceof MailError ? err : new MailError(
      `Unexpected failure on the IMAP connection to ${this.where}: ${String(err)}.`,
      "protocol",
      {
        cause: err,
      },
    );
    this.#failure = e;
    this.#conn.close();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.#pending.clear();
    if (this.#greeting) {
      clearTimeout(this.#greeting.timer);
      this.#greeting.reject(e);
      this.#greeting = undefined;
    }
    this.#markDead(e);
  }
}

/** RFC 5530 §3: no code, or AUTHENTICATIONFAILED / AUTHORIZATIONFAILED / EXPIRED, is about the credentials. */
function isCredentialsRefusal(tagged: StatusResponse): boolean {
  const code = tagged.code?.name;
  return !code || code === "AUTHENTICATIONFAILED" || code === "AUTHORIZATIONFAILED" || code === "EXPIRED";
}

function concat(text: string, bytes: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(text);
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  return out;
}
