/**
 * Sending mail. smtp:// and smtps:// go through nodemailer (STARTTLS / implicit TLS, AUTH, a pooled
 * connection); maildir:// delivers straight into the spool. Both compose the message with
 * nodemailer, so every message carries a proper Date and Message-ID.
 */
// @ts-types="@types/nodemailer"
import type Nodemailer from "nodemailer";
import { isIP } from "node:net";
import { Buffer } from "node:buffer";
import { type Account, parseAccount, redact, where } from "./account.ts";
import { certificateProblem, connectError, MailError } from "./errors.ts";
import { silentGreetingHint, wrongProtocol } from "./greeting.ts";
import type { MailPriority } from "./budget.ts";
import { isRateLimitAnswer } from "./rate_limit.ts";
import { type AccessTokenSource, tokenFor } from "./access_token.ts";

const SMTP_PORTS = "sending is usually smtps:// on port 465 or smtp:// on 587";
import { deliverToMaildir } from "./maildir.ts";
import { composePlain } from "./compose.ts";

export interface OutgoingMail {
  from: string;
  to: readonly string[];
  subject: string;
  text: string;
  /** Extra headers; never put secrets or addresses here. */
  headers?: Record<string, string>;
  /** The Date header; now when omitted (tests set old dates to prove --max-age). */
  date?: Date;
  /** What the mail is for: a mail budget near its end holds back the least important first. */
  priority?: MailPriority;
}

export interface SentInfo {
  messageId: string;
  /** The server's final answer ("250 2.0.0 Ok: queued as …"), or "delivered" for maildir. */
  response: string;
}

export interface Sender extends AsyncDisposable {
  readonly label: string;
  send(mail: OutgoingMail): Promise<SentInfo>;
  /**
   * Resolves when everything sent so far is durable, for a transport whose send() returns before
   * that (maildir: fsyncs run in the background). SMTP's 250 already means durable (RFC 5321 §4.1.1.4).
   */
  flush?(): Promise<void>;
  close(): Promise<void>;
}

export interface SenderOptions {
  caCerts?: string[];
  /** Access tokens for an smtp(s):// URL with `auth=oauth2`. */
  tokens?: AccessTokenSource;
  log?: (line: string) => void;
}

/** 4xx answers are "try again later" (RFC 5321 §4.2.1): retry a few times before giving up. */
const RETRY_DELAYS_MS = [500, 2_000, 5_000];
const CONNECTION_TIMEOUT_MS = 15_000;
const SOCKET_TIMEOUT_MS = 60_000;
/**
 * How long nodemailer may reuse a token before asking the source again; the source itself keeps
 * the token until shortly before it expires, so asking costs nothing.
 */
const TOKEN_REUSE_MS = 60_000;

export function openSender(url: string, opts: SenderOptions = {}): Sender {
  const account = parseAccount(url);
  if (account.scheme === "maildir") return new MaildirSender(account);
  if (account.scheme !== "smtp" && account.scheme !== "smtps") {
    throw new MailError(
      `--smtp needs an smtp://, smtps:// or maildir:// URL, not ${account.scheme}://.`,
      "config",
    );
  }
  return new SmtpSender(account, url, opts);
}

/**
 * nodemailer, loaded when the first mail needs it: evaluating it (with the STUN encoder, see
 * net/stun.ts) was about a third of every command's start-up, `--version` included (0.22 → 0.14 s),
 * and a maildir:// node or an app attached to a running node never sends by SMTP.
 */
let nodemailer: Promise<typeof Nodemailer> | undefined;
function loadNodemailer(): Promise<typeof Nodemailer> {
  return nodemailer ??= import("nodemailer").then((m) => m.default as typeof Nodemailer);
}

/** Composes the RFC 5322 bytes nodemailer would send. */
let composer: Promise<Nodemailer.Transporter> | undefined;
function loadComposer(): Promise<Nodemailer.Transporter> {
  return composer ??= loadNodemailer().then((nm) =>
    nm.createTransport({ streamTransport: true, buffer: true, newline: "\r\n" })
  );
}

/** The message as nodemailer takes it, for mail that composePlain (compose.ts) does not compose. */
function nodemailerMail(mail: OutgoingMail) {
  return {
    from: mail.from,
    to: [...mail.to],
    subject: mail.subject,
    text: mail.text,
    headers: mail.headers,
    date: mail.date,
  };
}

export async function composeMail(mail: OutgoingMail): Promise<{ raw: Uint8Array; messageId: string }> {
  const plain = mail.headers ? undefined : composePlain(mail);
  if (plain) return plain;
  const info = await (await loadComposer()).sendMail(nodemailerMail(mail));
  return { raw: new Uint8Array(info.message as unknown as Uint8Array), messageId: info.messageId };
}

/** fsyncs a maildir sender leaves running at most; the next send waits for the oldest. */
const MAX_PENDING_SYNCS = 32;

class MaildirSender implements Sender {
  readonly label: string;
  #syncing = new Set<Promise<void>>();
  #failure?: unknown;

  constructor(readonly account: Account) {
    this.label = `maildir://${account.path}`;
  }

  async send(mail: OutgoingMail): Promise<SentInfo> {
    if (this.#syncing.size >= MAX_PENDING_SYNCS) await Promise.race(this.#syncing);
    const { raw, messageId } = await composeMail(mail);
    await deliverToMaildir(this.account.path, mail.to, raw, (durable) => {
      const p = durable.catch((err) => void (this.#failure ??= err)).finally(() => this.#syncing.delete(p));
      this.#syncing.add(p);
    });
    return { messageId, response: "delivered" };
  }

  async flush(): Promise<void> {
    await Promise.all(this.#syncing);
    const failure = this.#failure;
    this.#failure = undefined;
    if (failure !== undefined) {
      throw new MailError(
        `Cannot make mail delivered to ${this.label} durable: ${(failure as Error).message}.`,
        "rejected",
        {
          cause: failure,
        },
      );
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#syncing);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export interface NodemailerError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

class SmtpSender implements Sender {
  readonly label: string;
  /** Made at the first send (see loadNodemailer). */
  #transport?: Promise<Nodemailer.Transporter>;
  #closed = false;
  /** Why the last token could not be had: nodemailer reports it only as a failed AUTH. */
  #tokenError?: MailError;

  constructor(readonly account: Account, url: string, readonly opts: SenderOptions) {
    this.label = redact(url);
    if (account.tls === "none" && account.password) {
      opts.log?.(`warning: ${this.label} sends the password without TLS, as its URL asks (tls=none).`);
    }
  }

  #open(): Promise<Nodemailer.Transporter> {
    const account = this.account;
    const opts = this.opts;
    return this.#transport ??= loadNodemailer().then((nodemailer) =>
      nodemailer.createTransport({
        host: account.host,
        port: account.port,
        secure: account.tls === "implicit",
        requireTLS: account.tls === "starttls",
        ignoreTLS: account.tls === "none",
        auth: account.auth === "oauth2"
          ? {
            // AUTH XOAUTH2 (nodemailer's OAuth2 support); it asks again with renew=true when the server
            // refuses a token, and we hand it the token and when to ask next.
            type: "OAuth2",
            user: account.user,
            provisionCallback: (_user, renew, callback) => {
              tokenFor(account, opts.tokens, { renew }).then(
                (token) => {
                  this.#tokenError = undefined;
                  callback(null, token, Date.now() + TOKEN_REUSE_MS);
                },
                (err) => {
                  this.#tokenError = err instanceof MailError ? err : undefined;
                  // nodemailer rewrites the error it is given (code = "EAUTH"): hand it a copy.
                  callback(new Error((err as Error).message), "", 0);
                },
              );
            },
          }
          : account.user
          ? { user: account.user, pass: account.password }
          : undefined,
        // SNI takes names only; with an IP address the certificate is still checked against it.
        tls: {
          ca: opts.caCerts,
          servername: isIP(account.host) ? undefined : account.host,
          minVersion: "TLSv1.2",
        },
        pool: true,
        maxConnections: 2,
        // nodemailer reconnects after 100 messages by default: a busy host would pay a TLS handshake and
        // AUTH every 100 replies for nothing.
        maxMessages: Infinity,
        connectionTimeout: CONNECTION_TIMEOUT_MS,
        greetingTimeout: CONNECTION_TIMEOUT_MS,
        socketTimeout: SOCKET_TIMEOUT_MS,
        logger: false,
        debug: false,
      })
    );
  }

  async send(mail: OutgoingMail): Promise<SentInfo> {
    if (this.#closed) {
      throw new MailError(`${this.label} was closed; nothing more is sent through it.`, "closed");
    }
    for (let attempt = 0;; attempt++) {
      try {
        // Our own sealed mail is composed in microseconds (compose.ts); nodemailer then only sends it.
        const transport = await this.#open();
        const plain = mail.headers ? undefined : composePlain(mail);
        const info = plain
          ? await transport.sendMail({
            envelope: { from: mail.from, to: [...mail.to] },
            raw: Buffer.from(plain.raw.buffer, plain.raw.byteOffset, plain.raw.byteLength),
          })
          : await transport.sendMail(nodemailerMail(mail));
        return { messageId: plain?.messageId ?? info.messageId, response: info.response };
      } catch (err) {
        const e = this.#tokenError ?? toMailError(err as NodemailerError, this.account);
        if (e.code !== "temporary" && e.code !== "closed" || attempt >= RETRY_DELAYS_MS.length) throw e;
        const delay = RETRY_DELAYS_MS[attempt] * (0.75 + Math.random() * 0.5);
        this.opts.log?.(
          `${where(this.account)} said "try later" (${e.response ?? e.message}); retrying in ${
            Math.round(delay)
          } ms.`,
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    (await this.#transport)?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** nodemailer's error as a MailError: what it was (code) and one sentence. */
export function toMailError(err: NodemailerError, account: Account): MailError {
  const at = where(account);
  const opts = { cause: err, command: err.command, response: err.response };
  const text = (err.message ?? "").replace(account.password ? account.password : "\u0000", "***");
  if (isRateLimitAnswer(err.responseCode, err.response)) {
    return new MailError(
      `The mail provider limits sending from this account: ${at} answered ${err.response}.`,
      "rate_limited",
      opts,
    );
  }
  if (err.code === "EAUTH" && err.responseCode && err.responseCode >= 400 && err.responseCode < 500) {
    // RFC 4954 §6: 454 4.7.0 "Temporary authentication failure" (the SASL backend is down): not a
    // wrong password, and worth another try.
    return new MailError(
      `${at} cannot check the password right now (${err.response}); try again later.`,
      "temporary",
      opts,
    );
  }
  if (err.code === "EAUTH" && account.auth === "oauth2") {
    return new MailError(
      `Cannot log in to ${at} as "${account.user}": the server refused the OAuth2 access token; ` +
        "the sign-in may have been revoked or lack the mail permission: run `mailmeet init --force --oauth …` to sign in again.",
      "auth",
      opts,
    );
  }
  if (err.code === "EAUTH") {
    return new MailError(
      `Cannot log in to ${at} as "${account.user}": the server refused the password. Check it, or use an app password.`,
      "auth",
      opts,
    );
  }
  if (err.responseCode && err.responseCode >= 400 && err.responseCode < 500) {
    return new MailError(`${at} refused the message for now: ${err.response}.`, "temporary", opts);
  }
  if (err.responseCode && err.responseCode >= 500) {
    return new MailError(`${at} refused the message: ${err.response}.`, "rejected", opts);
  }
  // The library's own words stay in `cause` (--debug); the user gets what to change.
  if (/InvalidContentType|corrupt message|wrong version number|record overflow/i.test(text)) {
    return connectError(at, err);
  }
  if (err.code === "EPROTOCOL" || /Invalid greeting/i.test(text)) {
    const other = wrongProtocol(at, "SMTP", err.response ?? "");
    if (other) return new MailError(other.message, other.code, opts);
    return new MailError(
      `${at} did not greet like an SMTP server: check the port (${SMTP_PORTS}).`,
      "config",
      opts,
    );
  }
  if (/certificate|self.signed|unable to verify|CERT_|UnknownIssuer|InvalidCertificate/i.test(text)) {
    return new MailError(
      `Cannot open a secure connection to ${at}: the server's certificate is not trusted (${
        certificateProblem(text)
      }); if it uses a private CA, pass it with --tls-ca FILE.`,
      "tls",
      { ...opts, reason: "untrusted_certificate" },
    );
  }
  if (err.code === "ETLS" || /STARTTLS/i.test(text)) {
    return new MailError(`Cannot secure the connection to ${at}: ${text}.`, "tls", opts);
  }
  if (err.code === "ETIMEDOUT") {
    return new MailError(
      `${at} did not answer in time${silentGreetingHint(account.port, account.tls === "implicit")}.`,
      "timeout",
      opts,
    );
  }
  if (err.code === "ECONNECTION" && /ECONNREFUSED|refused/i.test(text)) {
    return new MailError(
      `Cannot connect to ${at}: the connection was refused. Check the host and port.`,
      "connect",
      opts,
    );
  }
  if (err.code === "EDNS" || /ENOTFOUND|EAI_AGAIN|Name or service not known|failed to lookup/i.test(text)) {
    return new MailError(
      `Cannot find the mail server ${account.host}: the name does not resolve; check the host in the URL.`,
      "connect",
      opts,
    );
  }
  if (err.code === "ECONNECTION" || err.code === "ESOCKET") {
    return new MailError(`Cannot connect to ${at}: ${text}.`, "connect", opts);
  }
  if (err.code === "EENVELOPE") return new MailError(`${at} refused the message: ${text}.`, "rejected", opts);
  return new MailError(`Sending through ${at} failed: ${text}.`, "protocol", opts);
}
