/**
 * A step-by-step SMTP submission check for `doctor`: greeting, EHLO, STARTTLS (RFC 3207), AUTH
 * (RFC 4954), QUIT — nothing is sent. Sending itself goes through nodemailer (src/mail/smtp.ts);
 * this probe exists because a transport's verify() cannot say which step failed, and silently
 * skips the login when the server offers none on a clear connection (e.g. ?tls=none to a
 * submission port that wants STARTTLS first).
 */
import { type Account, where } from "./account.ts";
import { TextConnection } from "./connection.ts";
import { MailError, type MailErrorReason } from "./errors.ts";
import { type AccessTokenSource, tokenFor } from "./access_token.ts";
import { bearerAbort, bearerResponse, pickBearerMechanism, saslPlain } from "./sasl.ts";

export const SMTP_PROBE_TIMEOUT_MS = 15_000;

export interface SmtpProbeResult {
  /** "implicit" (smtps), "starttls", or "none" (clear text, as the URL asked). */
  tls: "implicit" | "starttls" | "none";
  /** The login was accepted (false when the URL names no user: nothing to check). */
  loggedIn: boolean;
  /** EHLO keywords after TLS, upper-cased (SIZE, AUTH, 8BITMIME …). */
  extensions: Set<string>;
  greeting: string;
}

interface Reply {
  code: number;
  lines: string[];
}

/** The stage a failure happened in, so doctor can put ✗ on the right line. */
export type SmtpStage = "connect" | "tls" | "login";

export class SmtpProbeError extends MailError {
  constructor(
    message: string,
    code: MailError["code"],
    readonly stage: SmtpStage,
    response?: string,
    reason?: MailErrorReason,
  ) {
    super(message, code, { response, reason });
    this.name = "SmtpProbeError";
  }
}

async function reply(conn: TextConnection, timeoutMs: number): Promise<Reply> {
  const lines: string[] = [];
  // RFC 5321 §4.2.1: "250-…" continues, "250 …" ends; a bounded number of lines.
  for (let i = 0; i < 200; i++) {
    const line = await conn.readLine(timeoutMs);
    lines.push(line.slice(4));
    if (line.length < 4 || line[3] !== "-") {
      const code = Number(line.slice(0, 3));
      if (!Number.isInteger(code)) {
        throw new SmtpProbeError(
          `${conn.where} does not answer like an SMTP server ("${line.slice(0, 60)}"); is the port right?`,
          "protocol",
          "connect",
        );
      }
      return { code, lines };
    }
  }
  throw new SmtpProbeError(`${conn.where} sent an endless reply.`, "protocol", "connect");
}

function text(r: Reply): string {
  return `${r.code} ${r.lines.join(" ")}`.trim();
}

async function ehlo(conn: TextConnection, name: string, timeoutMs: number): Promise<Set<string>> {
  await conn.write(`EHLO ${name}\r\n`);
  const r = await reply(conn, timeoutMs);
  if (r.code !== 250) {
    throw new SmtpProbeError(`${conn.where} refused EHLO: "${text(r)}".`, "protocol", "connect", text(r));
  }
  return new Set(r.lines.slice(1).map((l) => l.toUpperCase()));
}

function authMechanisms(ext: Set<string>): Set<string> {
  for (const e of ext) {
    if (e.startsWith("AUTH ") || e.startsWith("AUTH=")) return new Set(e.slice(5).split(/\s+/));
  }
  return new Set();
}

export async function probeSmtp(
  account: Account,
  opts: { caCerts?: string[]; timeoutMs?: number; heloName?: string; tokens?: AccessTokenSource } = {},
): Promise<SmtpProbeResult> {
  const timeoutMs = opts.timeoutMs ?? SMTP_PROBE_TIMEOUT_MS;
  const at = where(account);
  const name = opts.heloName ?? "mailmeet.invalid";
  let conn: TextConnection;
  try {
    conn = await TextConnection.open({
      host: account.host,
      port: account.port,
      implicitTls: account.tls === "implicit",
      caCerts: opts.caCerts,
      connectTimeoutMs: timeoutMs,
    });
  } catch (err) {
    const e = err as MailError;
    throw new SmtpProbeError(e.message, e.code, e.code === "tls" ? "tls" : "connect", undefined, e.reason);
  }
  try {
    let greeting: Reply;
    try {
      greeting = await reply(conn, timeoutMs);
    } catch (err) {
      if (account.tls === "implicit" && err instanceof MailError && err.code !== "protocol") {
        throw new SmtpProbeError(
          `${at} did not greet over TLS; if this port expects STARTTLS, use smtp:// (usually port 587).`,
          "tls",
          "tls",
        );
      }
      if (err instanceof MailError && err.code === "timeout") {
        throw new SmtpProbeError(
          `${at} sent no greeting; if this port speaks TLS from the start, use smtps:// (usually port 465).`,
          "timeout",
          "connect",
        );
      }
      throw err;
    }
    if (greeting.code !== 220) {
      throw new SmtpProbeError(
        `${at} refused the session: "${text(greeting)}".`,
        "temporary",
        "connect",
        text(greeting),
      );
    }
    let ext = await ehlo(conn, name, timeoutMs);
    if (account.tls === "starttls") {
      if (!ext.has("STARTTLS")) {
        throw new SmtpProbeError(
          `${at} does not offer STARTTLS, so the password would cross the network unencrypted; use smtps:// (port 465), or ?tls=none only on a network you trust.`,
          "tls",
          "tls",
          undefined,
          "no_starttls",
        );
      }
      await conn.write("STARTTLS\r\n");
      const r = await reply(conn, timeoutMs);
      if (r.code !== 220) {
        throw new SmtpProbeError(`${at} refused STARTTLS: "${text(r)}".`, "tls", "tls", text(r));
      }
      try {
        await conn.startTls();
      } catch (err) {
        const e = err as MailError;
        throw new SmtpProbeError(e.message, "tls", "tls", undefined, e.reason);
      }
      // RFC 3207 §4.2: forget what was said before TLS and ask again.
      ext = await ehlo(conn, name, timeoutMs);
    }
    let loggedIn = false;
    if (account.user) {
      const mechs = authMechanisms(ext);
      if (mechs.size === 0) {
        throw new SmtpProbeError(
          account.tls === "none"
            ? `${at} offers no login on an unencrypted connection; remove ?tls=none (use smtp:// with STARTTLS on port 587, or smtps:// on 465).`
            : `${at} offers no login (AUTH) on this port; it may be a server-to-server port: use the submission port (587 or 465).`,
          "auth",
          "login",
          undefined,
          account.tls === "none" ? "needs_encryption" : undefined,
        );
      }
      const r = account.auth === "oauth2"
        ? await bearerLogin(conn, account, mechs, timeoutMs, opts.tokens)
        : await login(conn, account, mechs, timeoutMs);
      if (r.code !== 235) {
        const t = account.password ? text(r).replaceAll(account.password, "***") : text(r);
        if (r.code === 530 || r.code === 538 || /STARTTLS|encrypt/i.test(t)) {
          throw new SmtpProbeError(
            `${at} refused to log in without encryption ("${t}"); remove ?tls=none.`,
            "tls",
            "login",
            t,
            "needs_encryption",
          );
        }
        if (r.code >= 400 && r.code < 500) {
          throw new SmtpProbeError(
            `Cannot log in to ${at} now ("${t}"); try again later.`,
            "temporary",
            "login",
            t,
          );
        }
        throw new SmtpProbeError(
          account.auth === "oauth2"
            ? `Cannot log in to ${at} as "${account.user}": the server refused the OAuth2 access token; the sign-in may have been revoked or lack the mail permission: run \`mailmeet init --force --oauth …\` to sign in again.`
            : `Cannot log in to ${at} as "${account.user}": the server refused the password. Check it, or use an app password.`,
          "auth",
          "login",
          t,
        );
      }
      loggedIn = true;
    }
    await conn.write("QUIT\r\n").catch(() => {});
    return { tls: account.tls, loggedIn, extensions: ext, greeting: greeting.lines.join(" ") };
  } finally {
    conn.close();
  }
}

/** AUTH OAUTHBEARER / XOAUTH2 with the initial response (RFC 4954 §4, RFC 7628 §3). */
async function bearerLogin(
  conn: TextConnection,
  account: Account,
  mechs: Set<string>,
  timeoutMs: number,
  tokens: AccessTokenSource | undefined,
): Promise<Reply> {
  const mechanism = pickBearerMechanism(mechs);
  if (!mechanism) {
    throw new SmtpProbeError(
      `${
        where(account)
      } offers no OAuth2 login (AUTH XOAUTH2 or OAUTHBEARER); use a password in --smtp instead of auth=oauth2.`,
      "auth",
      "login",
    );
  }
  let token: string;
  try {
    token = await tokenFor(account, tokens);
  } catch (err) {
    if (err instanceof MailError) {
      throw new SmtpProbeError(err.message, err.code, "login", undefined, err.reason);
    }
    throw err;
  }
  await conn.write(
    `AUTH ${mechanism} ${bearerResponse(mechanism, account.user, token, account.host, account.port)}\r\n`,
  );
  const r = await reply(conn, timeoutMs);
  if (r.code !== 334) return r;
  // RFC 7628 §3.2.2: the 334 carries the error; the dummy response lets the server finish with 535.
  await conn.write(`${bearerAbort(mechanism)}\r\n`);
  return await reply(conn, timeoutMs);
}

async function login(
  conn: TextConnection,
  account: Account,
  mechs: Set<string>,
  timeoutMs: number,
): Promise<Reply> {
  if (mechs.has("PLAIN")) {
    // RFC 4954 §4 initial response: one round trip.
    await conn.write(`AUTH PLAIN ${saslPlain(account.user, account.password)}\r\n`);
    return await reply(conn, timeoutMs);
  }
  if (mechs.has("LOGIN")) {
    const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
    await conn.write("AUTH LOGIN\r\n");
    let r = await reply(conn, timeoutMs);
    if (r.code !== 334) return r;
    await conn.write(`${b64(account.user)}\r\n`);
    r = await reply(conn, timeoutMs);
    if (r.code !== 334) return r;
    await conn.write(`${b64(account.password)}\r\n`);
    return await reply(conn, timeoutMs);
  }
  throw new SmtpProbeError(
    `${where(account)} offers only login methods mailmeet does not speak (${[...mechs].join(", ")}).`,
    "auth",
    "login",
  );
}
