/**
 * The checks behind `mailmeet doctor`, one per step a working setup needs, in the order a failure
 * would show up: settings; for sending and for reading mail each, the name (DNS), the connection,
 * TLS and the certificate, the login (and IMAP IDLE); a real round trip (a mail to yourself, seen
 * in the inbox, deleted); the host(s) answering a real request (--via); the listen port; the address
 * others would dial. Each result carries what to do when it failed. A failed step skips the steps
 * that need it, so the first ✗ is the one to fix.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { type Account, parseAccount, where } from "../mail/account.ts";
import { MailError } from "../mail/errors.ts";
import { ImapClient } from "../mail/imap/client.ts";
import type { Mailbox, MessageInfo } from "../mail/mailbox.ts";
import { openMailbox } from "../mail/open.ts";
import { Pop3Session } from "../mail/pop3/session.ts";
import { openSender, type Sender } from "../mail/smtp.ts";
import { OAuthError } from "../oauth/errors.ts";
import { signInExpiredSentence, type StoredTokenSource } from "../oauth/token_source.ts";
import { detectAdvertiseHost } from "../net/address.ts";
import { listenLinks } from "../net/link.ts";
import { generateKeyPair } from "../protocol/noise.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import { equalBytes } from "../protocol/bytes.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { type Disposition, type InboundMail, InboxReader } from "../roles/inbox.ts";
import { type Linker, Peer } from "../roles/peer.ts";
import { formatHostPort } from "../protocol/candidate.ts";
import type { NodeEvent } from "../roles/events.ts";
import { fileMode } from "./config_file.ts";
import {
  list,
  loadKey,
  type MailSettings,
  mailSettings,
  num,
  parseHostPort,
  str,
  userId,
} from "./context.ts";
import { listenError, sentenceFor } from "./errors.ts";
import type { Resolved } from "./options.ts";
import { providerFor } from "./providers.ts";
import { probeSmtp, SmtpProbeError } from "../mail/smtp_probe.ts";
import { checkNat } from "./doctor_nat.ts";

export type CheckStatus = "ok" | "fail" | "warn" | "skip";

export interface CheckResult {
  /** Stable name for scripts: settings, smtp_dns, smtp_connect, smtp_tls, smtp_login, inbox_dns, … */
  check: string;
  status: CheckStatus;
  /** What was checked and what was found, one line. */
  title: string;
  /** What to do, when it did not pass. */
  fix?: string;
  ms?: number;
}

/** How long doctor waits for its own mail and for a host's reply, unless --timeout says otherwise. */
export const DOCTOR_WAIT_MS = 30_000;
const STEP_TIMEOUT_MS = 15_000;

const PORTS_SEND = "the usual ports for sending are 465 (smtps://) and 587 (smtp://, STARTTLS)";
const PORTS_READ =
  "the usual ports for reading are 993 (imaps://), 143 (imap://, STARTTLS), 995 (pop3s://), 110 (pop3://)";

export interface DoctorOptions {
  /** Each result as soon as it is known. */
  report: (r: CheckResult) => void;
  /** Lines of detail for --verbose. */
  log?: (line: string) => void;
}

/** Runs every check; resolves with all results (the caller decides the exit code). */
export async function runDoctor(r: Resolved, opts: DoctorOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const report = (c: CheckResult) => {
    results.push(c);
    opts.report(c);
    return c;
  };
  const waitMs = r.sources.timeout === "default" ? DOCTOR_WAIT_MS : num(r, "timeout");

  // Settings: without an address and valid URLs nothing else can run.
  let mail: MailSettings;
  try {
    mail = await mailSettings(r);
  } catch (err) {
    report({
      check: "settings",
      status: "fail",
      title: `settings: ${sentenceFor(err)}`,
      fix:
        "Run `mailmeet init` to write them, or pass the options (`mailmeet config show` shows what is set).",
    });
    return results;
  }
  let key: NetworkKey | undefined;
  let keyError: unknown;
  try {
    key = await loadKey(r);
  } catch (err) {
    keyError = err;
  }
  let user = mail.address.split("@")[0];
  try {
    user = userId(r, mail.address);
  } catch (err) {
    keyError ??= err;
  }
  report(
    key && !keyError
      ? {
        check: "settings",
        status: "ok",
        title: `settings: ${mail.address} as "${user}", network key ${key.fingerprint} (${
          key.source === "key" ? "a key from `mailmeet keygen`" : "a passphrase"
        }${keyOrigin(r)})`,
      }
      : {
        check: "settings",
        status: "fail",
        title: `settings: ${sentenceFor(keyError)}`,
        fix:
          "Everyone in a group uses the same key: `mailmeet init --key-file FILE` imports the one you were given.",
      },
  );
  const file = r.configFile;
  if (file?.exists && Deno.build.os !== "windows") {
    const mode = await fileMode(file.path).catch(() => undefined);
    if (mode !== undefined && (mode & 0o077) !== 0) {
      report({
        check: "config_file",
        status: "fail",
        title: `config file ${file.path} can be read by others (mode ${mode.toString(8).padStart(3, "0")})`,
        fix: `It holds your mail password: chmod 600 ${file.path}`,
      });
    } else if (mode !== undefined) {
      report({
        check: "config_file",
        status: "ok",
        title: `config file ${file.path} is readable by you only`,
      });
    }
  }

  const signedIn = mail.tokens ? await checkSignIn(mail.tokens, report) : true;
  const smtpOk = signedIn ? await checkSending(mail, report) : skipped(report, "smtp_login", "sending");
  const inboxOk = signedIn ? await checkReading(mail, report) : skipped(report, "inbox_login", "reading");

  let roundTripOk = false;
  if (smtpOk && inboxOk) {
    roundTripOk = await checkRoundTrip(mail, waitMs, report);
  } else {
    report({
      check: "roundtrip",
      status: "skip",
      title: "round trip (a mail to yourself): skipped until sending and reading work",
    });
  }

  // The listener comes before the host check: the request advertises it, as join's does.
  const listen = await checkListen(r, key, user, report);
  try {
    await checkNat(r, listen?.port ?? 0, report);
    const vias = list(r, "via").map((v) => v.toLowerCase());
    if (vias.length === 0) {
      report({ check: "via", status: "skip", title: "host: no --via given, so no host was asked" });
    } else if (!roundTripOk || !key || !listen) {
      report({
        check: "via",
        status: "skip",
        title: `host ${vias.join(", ")}: skipped until ${
          !roundTripOk ? "the round trip" : !key ? "the network key" : "the listen port"
        } works`,
      });
    } else {
      await checkHosts(r, mail, key, user, vias, listen, waitMs, report);
    }
  } finally {
    await listen?.close();
  }
  return results;
}

/** Where the key came from, for the settings line: ", from FILE" or ", given with --key". */
function keyOrigin(r: Resolved): string {
  if (str(r, "key")) {
    return r.sources.key === "env"
      ? ", from MAILMEET_KEY"
      : r.sources.key === "file"
      ? ", in the config file"
      : ", given with --key";
  }
  const file = str(r, "key-file");
  return file ? `, from ${file}` : "";
}

/* ---------- OAuth2 sign-in ---------- */

/**
 * Renews the access token now: the only way to learn whether the provider still honours the
 * sign-in (a revoked refresh token looks like any other until it is used).
 */
export async function checkSignIn(
  tokens: StoredTokenSource,
  report: (c: CheckResult) => void,
): Promise<boolean> {
  const { user, client } = tokens.signIn;
  const mode = Deno.build.os === "windows" ? undefined : await fileMode(tokens.path).catch(() => undefined);
  if (mode !== undefined && (mode & 0o077) !== 0) {
    report({
      check: "oauth_file",
      status: "fail",
      title: `sign-in file ${tokens.path} can be read by others (mode ${mode.toString(8).padStart(3, "0")})`,
      fix: `It lets anyone read and send your mail: chmod 600 ${tokens.path}`,
    });
  }
  const t0 = performance.now();
  try {
    await tokens.refresh();
    report({
      check: "oauth",
      status: "ok",
      title: `sign-in: OAuth2 (${client.provider}) for ${user}; the access token was renewed`,
      ms: ms(t0),
    });
    return true;
  } catch (err) {
    const revoked = err instanceof OAuthError && err.code === "revoked";
    report({
      check: "oauth",
      status: "fail",
      title: revoked
        ? `sign-in: ${signInExpiredSentence(user, client.provider)}.`
        : `sign-in: ${sentenceFor(err)}`,
      fix: revoked
        ? "A sign-in ends when the password changes, when the app's access is removed in the account's security settings, or after a long time unused."
        : "Check the network and the endpoints (--oauth-token-url); `mailmeet doctor --debug` shows the provider's answer.",
    });
    return false;
  }
}

function skipped(report: (c: CheckResult) => void, check: string, what: string): false {
  report({ check, status: "skip", title: `${what}: not tried without a valid sign-in` });
  return false;
}

/* ---------- sending ---------- */

async function checkSending(mail: MailSettings, report: (c: CheckResult) => void): Promise<boolean> {
  const account = parseAccount(mail.smtp);
  if (account.scheme === "maildir") return await checkSpool(account, "sending", "smtp", report);
  const at = where(account);
  if (!await checkDns(account, "smtp", "sending", report)) return false;
  if (!await checkTcp(account, "smtp", "sending", PORTS_SEND, report)) return false;
  const t0 = performance.now();
  try {
    const res = await probeSmtp(account, {
      caCerts: mail.caCerts,
      timeoutMs: STEP_TIMEOUT_MS,
      tokens: mail.tokens,
    });
    report(tlsResult("smtp", "sending", account, res.tls === "none"));
    report(
      account.user
        ? {
          check: "smtp_login",
          status: "ok",
          title: `sending: logged in to ${at} as ${account.user}`,
          ms: ms(t0),
        }
        : {
          check: "smtp_login",
          status: "warn",
          title: `sending: ${at} was not asked for a login (the URL names no user)`,
          fix: "Most providers only relay mail for logged-in users: put USER:PASSWORD@ in --smtp.",
        },
    );
    return true;
  } catch (err) {
    const e = err as SmtpProbeError;
    const stage = e instanceof SmtpProbeError ? e.stage : "tls";
    if (stage === "login") {
      report(tlsResult("smtp", "sending", account, account.tls === "none"));
      report({
        check: "smtp_login",
        status: "fail",
        title: `sending: ${e.message}`,
        fix: loginFix(account, mail.address, e),
      });
    } else {
      report({
        check: "smtp_tls",
        status: "fail",
        title: `sending: ${e.message}`,
        fix: tlsFix(account, e, PORTS_SEND),
      });
      report({ check: "smtp_login", status: "skip", title: `sending: login to ${at} not tried` });
    }
    return false;
  }
}

/* ---------- reading ---------- */

async function checkReading(mail: MailSettings, report: (c: CheckResult) => void): Promise<boolean> {
  const account = parseAccount(mail.inbox);
  if (account.scheme === "maildir") return await checkSpool(account, "reading", "inbox", report);
  const at = where(account);
  const proto = account.scheme.startsWith("imap") ? "IMAP" : "POP3";
  if (!await checkDns(account, "inbox", "reading", report)) return false;
  if (!await checkTcp(account, "inbox", "reading", PORTS_READ, report)) return false;
  const t0 = performance.now();
  const timeouts = {
    caCerts: mail.caCerts,
    tokens: mail.tokens,
    connectTimeoutMs: STEP_TIMEOUT_MS,
    greetingTimeoutMs: STEP_TIMEOUT_MS,
    commandTimeoutMs: STEP_TIMEOUT_MS,
  };
  let capabilities: ReadonlySet<string> = new Set();
  try {
    if (proto === "IMAP") {
      const client = await ImapClient.connect(account, timeouts);
      capabilities = new Set(client.capabilities);
      await client.logout(STEP_TIMEOUT_MS);
    } else {
      const session = await Pop3Session.open(account, timeouts);
      await session.quit(STEP_TIMEOUT_MS).catch(() => {});
    }
  } catch (err) {
    const e = err instanceof MailError ? err : new MailError(String(err), "protocol");
    if (e.code === "auth" || e.code === "temporary") {
      report(tlsResult("inbox", "reading", account, account.tls === "none"));
      report({
        check: "inbox_login",
        status: "fail",
        title: `reading: ${e.message}`,
        fix: loginFix(account, mail.address, e),
      });
    } else {
      report({
        check: "inbox_tls",
        status: "fail",
        title: `reading: ${e.message}`,
        fix: tlsFix(account, e, PORTS_READ),
      });
      report({ check: "inbox_login", status: "skip", title: `reading: ${proto} login to ${at} not tried` });
    }
    report({ check: "inbox_push", status: "skip", title: "reading: push (IMAP IDLE) not checked" });
    return false;
  }
  report(tlsResult("inbox", "reading", account, account.tls === "none"));
  report({
    check: "inbox_login",
    status: "ok",
    title: `reading: logged in to ${proto} at ${at} as ${account.user}`,
    ms: ms(t0),
  });
  if (proto === "POP3") {
    report({
      check: "inbox_push",
      status: "warn",
      title: `reading: POP3 has no push, so replies are polled every ${mail.pollMs / 1000} s`,
      fix: "Fine, only slower; an imaps:// inbox (IMAP IDLE) sees replies the moment they arrive.",
    });
    report({
      check: "inbox_junk",
      status: "warn",
      title: "reading: POP3 sees only the inbox, so mailmeet mail the provider files as spam cannot be seen",
      fix:
        `Use imaps:// if the provider offers it (mailmeet then reads the junk folder too), or add a filter rule that keeps mail whose subject holds "${mail.marker}" in the inbox.`,
    });
  } else if (capabilities.has("IDLE")) {
    report({ check: "inbox_push", status: "ok", title: "reading: the server pushes new mail (IMAP IDLE)" });
  } else {
    report({
      check: "inbox_push",
      status: "warn",
      title: `reading: ${at} has no IMAP IDLE, so replies are polled every ${mail.pollMs / 1000} s`,
      fix: "Fine, only slower; lower --poll to see replies sooner.",
    });
  }
  return true;
}

/* ---------- steps shared by both ---------- */

type Side = "smtp" | "inbox";

async function checkSpool(
  account: Account,
  what: string,
  side: Side,
  report: (c: CheckResult) => void,
): Promise<boolean> {
  const probe = `${account.path}/.mailmeet-doctor-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.mkdir(account.path, { recursive: true });
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (err) {
    report({
      check: `${side}_spool`,
      status: "fail",
      title: `${what}: cannot write to the maildir spool ${account.path}: ${(err as Error).message}`,
      fix: "Pick a folder you can write to in the maildir:/// URL, or fix its owner.",
    });
    return false;
  }
  report({
    check: `${side}_spool`,
    status: "ok",
    title: `${what}: maildir spool ${account.path} (this machine only, no mail server)`,
  });
  return true;
}

async function checkDns(
  account: Account,
  side: Side,
  what: string,
  report: (c: CheckResult) => void,
): Promise<boolean> {
  if (isIP(account.host)) return true;
  const t0 = performance.now();
  try {
    const found = await withDeadline(lookup(account.host, { all: true }), STEP_TIMEOUT_MS);
    report({
      check: `${side}_dns`,
      status: "ok",
      title: `${what}: ${account.host} is ${found.map((a) => a.address).slice(0, 3).join(", ")}`,
      ms: ms(t0),
    });
    return true;
  } catch (err) {
    report({
      check: `${side}_dns`,
      status: "fail",
      title: `${what}: cannot find the server ${account.host} (${(err as Error).message})`,
      fix:
        `Check the server name in --${side} for a typo (your provider's help page lists it), and that this machine is online.`,
    });
    report({ check: `${side}_connect`, status: "skip", title: `${what}: connection not tried` });
    return false;
  }
}

async function checkTcp(
  account: Account,
  side: Side,
  what: string,
  ports: string,
  report: (c: CheckResult) => void,
): Promise<boolean> {
  const at = where(account);
  const t0 = performance.now();
  try {
    const conn = await Deno.connect({
      hostname: account.host,
      port: account.port,
      signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    });
    conn.close();
    report({
      check: `${side}_connect`,
      status: "ok",
      title: `${what}: ${at} accepts connections`,
      ms: ms(t0),
    });
    return true;
  } catch (err) {
    const refused = err instanceof Deno.errors.ConnectionRefused;
    report({
      check: `${side}_connect`,
      status: "fail",
      title: refused
        ? `${what}: nothing answers at ${at} (connection refused)`
        : `${what}: cannot connect to ${at} within ${STEP_TIMEOUT_MS / 1000} s (${(err as Error).message})`,
      fix: refused
        ? `Check the port in --${side}: ${ports}.`
        : `A firewall or the network may block port ${account.port}; try the other usual port (${ports}).`,
    });
    report({ check: `${side}_tls`, status: "skip", title: `${what}: TLS not tried` });
    return false;
  }
}

function tlsResult(side: Side, what: string, account: Account, clear: boolean): CheckResult {
  if (clear) {
    return {
      check: `${side}_tls`,
      status: "warn",
      title: `${what}: no TLS to ${where(account)} (?tls=none): the password crosses the network in clear`,
      fix: "Only on a network you trust; remove ?tls=none to require encryption.",
    };
  }
  return {
    check: `${side}_tls`,
    status: "ok",
    title: `${what}: ${account.tls === "implicit" ? "TLS" : "STARTTLS"} to ${
      where(account)
    }, certificate trusted`,
  };
}

function tlsFix(account: Account, e: MailError, ports: string): string {
  const m = e.message;
  if (/certificate/i.test(m)) {
    return "If the server uses a private CA, pass its certificate with --tls-ca FILE; otherwise check that the server name in the URL is the one in its certificate (no IP address, no alias).";
  }
  if (/STARTTLS|STLS/.test(m) && /does not offer/.test(m)) {
    return `Use the TLS port instead (${
      account.scheme.startsWith("smtp")
        ? "smtps:// on 465"
        : account.scheme.startsWith("imap")
        ? "imaps:// on 993"
        : "pop3s:// on 995"
    }); ?tls=none sends the password in clear and is only for a network you trust.`;
  }
  if (
    e.code === "timeout" || e.code === "closed" || e.code === "connect" || e.code === "protocol" ||
    e.code === "tls"
  ) {
    return `The port may expect the other TLS mode or another protocol: ${ports}.`;
  }
  return "Check the server and port in the URL.";
}

function loginFix(account: Account, address: string, e: MailError): string {
  if (e.code === "temporary") return "The server is busy or limits logins; try again in a few minutes.";
  if (account.auth === "oauth2") {
    return "Sign in again with `mailmeet init --force`; if the server still refuses the token, the app your group registered may lack the IMAP/POP/SMTP permission, or POP3/IMAP/SMTP AUTH may be switched off for the account.";
  }
  if (e.code === "tls" || /without encryption|tls=none/.test(e.message)) {
    return "Remove ?tls=none from the URL: the server wants the connection encrypted before the login.";
  }
  const note = providerFor(address)?.note;
  return `Check the login name (${account.user}) and the password in the URL (write @ as %40 and other special characters percent-encoded), or create an app password; some providers need IMAP/POP3 switched on first.${
    note ? ` ${note}` : ""
  }`;
}

/* ---------- round trip ---------- */

async function checkRoundTrip(
  mail: MailSettings,
  waitMs: number,
  report: (c: CheckResult) => void,
): Promise<boolean> {
  const tag = crypto.randomUUID().slice(0, 13);
  const subject = `mailmeet doctor ${tag}`;
  const t0 = performance.now();
  let sender: Sender | undefined;
  let inbox: Mailbox | undefined;
  try {
    sender = openSender(mail.smtp, { caCerts: mail.caCerts, tokens: mail.tokens });
    inbox = await openMailbox(mail.inbox, {
      address: mail.address,
      caCerts: mail.caCerts,
      tokens: mail.tokens,
      pollIntervalMs: mail.pollMs,
    });
    await sender.send({
      from: mail.address,
      to: [mail.address],
      subject,
      text: "A test mail from `mailmeet doctor`, which deletes it once it has arrived.\r\n" +
        "If you can read this, doctor stopped before it could; delete it.\r\n",
    });
    const sentMs = ms(t0);
    const found = await waitForSubject(inbox, subject, waitMs);
    if (!found) {
      report({
        check: "roundtrip",
        status: "fail",
        title: `round trip: a mail to ${mail.address} was accepted for sending but did not arrive within ${
          waitMs / 1000
        } s`,
        fix:
          "Check that --inbox reads the mailbox of --address, and the spam folder; some providers hold mail sent to yourself for a while.",
        ms: ms(t0),
      });
      return false;
    }
    await inbox.delete(found.map((m) => m.id));
    await inbox.commit();
    const junk = found.find((m) => m.junk)?.junk;
    if (junk) {
      report({
        check: "roundtrip",
        status: "warn",
        title: `round trip: a mail to yourself arrived (${
          fmtMs(ms(t0))
        }), but in the junk folder "${junk}"; mailmeet reads it there too, but providers empty it and may delay it`,
        fix:
          `Mark the mail as not spam, or add a filter rule that keeps mail whose subject holds "${mail.marker}" in the inbox.`,
        ms: ms(t0),
      });
      return true;
    }
    report({
      check: "roundtrip",
      status: "ok",
      title: `round trip: a mail to yourself was sent (${fmtMs(sentMs)}), arrived (${
        fmtMs(ms(t0))
      }) and was deleted`,
      ms: ms(t0),
    });
    return true;
  } catch (err) {
    report({
      check: "roundtrip",
      status: "fail",
      title: `round trip: ${sentenceFor(err)}`,
      fix: err instanceof MailError && err.code === "rejected"
        ? "The server refused the message: check that --address is the address of the --smtp account."
        : "Run doctor again; if it repeats, the line above names the server that failed.",
      ms: ms(t0),
    });
    return false;
  } finally {
    await sender?.close();
    await inbox?.close();
  }
}

/** Waits (push or polling, bounded by waitMs) until mail with `subject` is in the box; its ids. */
async function waitForSubject(
  inbox: Mailbox,
  subject: string,
  waitMs: number,
): Promise<MessageInfo[] | undefined> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), waitMs);
  try {
    for await (const _ of inbox.watch(stop.signal)) {
      if (stop.signal.aborted) break;
      const found = await inbox.list(subject);
      if (found.length) return found;
    }
    return undefined;
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
}

/* ---------- the listen port and the address ---------- */

interface Listening {
  linker: Linker;
  port: number;
  advertise: { host: string; port: number };
  close(): Promise<void>;
}

async function checkListen(
  r: Resolved,
  key: NetworkKey | undefined,
  user: string,
  report: (c: CheckResult) => void,
): Promise<Listening | undefined> {
  let listen: { host: string; port: number };
  try {
    listen = parseHostPort(str(r, "listen")!, "listen");
  } catch (err) {
    report({
      check: "listen",
      status: "fail",
      title: `listen: ${sentenceFor(err)}`,
      fix: "Use --listen IP:PORT.",
    });
    return undefined;
  }
  // Without the group key the listener still listens (it just cannot complete a handshake).
  const staticKey = generateKeyPair();
  const stop = new AbortController();
  let listener;
  try {
    listener = listenLinks({
      hostname: listen.host,
      port: listen.port,
      staticKey,
      networkKey: key?.secret ?? new Uint8Array(32),
      localInfo: { user, v: 1 },
      signal: stop.signal,
      onError: () => {},
      onLink: (link) => void link.close(),
    });
  } catch (err) {
    const inUse = err instanceof Deno.errors.AddrInUse;
    report({
      check: "listen",
      status: "fail",
      title: `listen: ${sentenceFor(listenError(formatHostPort(listen.host, listen.port), err))}`,
      fix: inUse
        ? "Another program (maybe a running mailmeet: `mailmeet status`) has that port; pick another --listen port."
        : "Check --listen: an address of this machine (or 0.0.0.0) and a free port.",
    });
    report({ check: "address", status: "skip", title: "address: not checked" });
    return undefined;
  }
  const port = listener.addr.port;
  const close = async () => {
    stop.abort();
    await listener.close();
  };
  const local = listen.host === "0.0.0.0" ? "127.0.0.1" : listen.host === "::" ? "::1" : listen.host;
  try {
    const conn = await Deno.connect({ hostname: local, port, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
    conn.close();
    report({
      check: "listen",
      status: "ok",
      title: listen.port === 0
        ? `listen: port ${port} (a free one, new each run) accepts connections on this machine`
        : `listen: ${formatHostPort(listen.host, port)} accepts connections on this machine`,
      fix: listen.port === 0
        ? "Peers behind a router reach you only on a fixed, forwarded port: e.g. --listen 0.0.0.0:47000."
        : undefined,
    });
  } catch (err) {
    report({
      check: "listen",
      status: "fail",
      title: `listen: listening on ${formatHostPort(listen.host, port)} but a local connection failed: ${
        (err as Error).message
      }`,
      fix: "A local firewall may block the port; allow it, or pick another --listen port.",
    });
    await close();
    report({ check: "address", status: "skip", title: "address: not checked" });
    return undefined;
  }

  let advertise: { host: string; port: number };
  const adv = str(r, "advertise");
  if (adv) {
    try {
      advertise = parseHostPort(adv, "advertise");
    } catch (err) {
      report({
        check: "address",
        status: "fail",
        title: `address: ${sentenceFor(err)}`,
        fix: "Use --advertise IP:PORT.",
      });
      await close();
      return undefined;
    }
    report({
      check: "address",
      status: "ok",
      title: `address: others dial ${formatHostPort(advertise.host, advertise.port)} (--advertise)`,
    });
  } else {
    const host = detectAdvertiseHost(listen.host);
    if (!host) {
      report({
        check: "address",
        status: "fail",
        title: "address: this machine has no network address others could dial",
        fix: "Connect to a network, or pass --advertise IP:PORT (your LAN or public address).",
      });
      await close();
      return undefined;
    }
    advertise = { host, port };
    const kind = addressKind(host);
    report({
      check: "address",
      status: kind === "public" ? "ok" : "warn",
      title: `address: others will dial ${formatHostPort(host, port)} (${
        kind === "public"
          ? "a public address"
          : kind === "loopback"
          ? "this machine only"
          : "a private address: only machines on the same network can reach it"
      })`,
      fix: kind === "public"
        ? undefined
        : kind === "loopback"
        ? "Listen on 0.0.0.0 (the default) so others can reach you."
        : "Fine for a LAN party; across the internet, forward a fixed --listen port on your router and pass --advertise PUBLIC-IP:PORT.",
    });
  }
  // Doctor's probes never dial: they only want to know that a host answers.
  const linker: Linker = {
    publicKey: staticKey.publicKey,
    reach: () => ({
      host: advertise.host,
      port: advertise.port,
      candidates: [{ kind: "advertised", transport: "tcp", host: advertise.host, port: advertise.port }],
      mapping: "unknown",
      relay: false,
      role: "peer",
    }),
    dial: () => Promise.reject(new Error("doctor does not dial")),
  };
  return { linker, port, advertise, close };
}

export function addressKind(host: string): "public" | "private" | "loopback" {
  if (/^127\./.test(host) || host === "::1") return "loopback";
  if (
    /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|169\.254\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.)/.test(
      host,
    )
  ) {
    return "private";
  }
  if (/^(fc|fd|fe[89ab])/i.test(host)) return "private";
  return "public";
}

/* ---------- the host(s) ---------- */

async function checkHosts(
  r: Resolved,
  mail: MailSettings,
  key: NetworkKey,
  user: string,
  vias: string[],
  listening: Listening,
  waitMs: number,
  report: (c: CheckResult) => void,
): Promise<void> {
  const replies = new Map<string, { from: string; peers: number; ms: number }>();
  const t0 = performance.now();
  await using stack = new AsyncDisposableStack();
  const sender = stack.use(openSender(mail.smtp, { caCerts: mail.caCerts, tokens: mail.tokens }));
  const inbox = stack.use(
    await openMailbox(mail.inbox, {
      address: mail.address,
      caCerts: mail.caCerts,
      tokens: mail.tokens,
      pollIntervalMs: mail.pollMs,
    }),
  );
  // One peer per host, each with its own session id, so each host's answer is seen; they never
  // dial (maxLinks 0): doctor only wants to know that the host answers.
  const probes = vias.map((via) => {
    const peer = new Peer(
      {
        address: mail.address,
        user,
        vias: [via],
        marker: str(r, "marker")!,
        friends: new Set(),
        blocked: new Set(),
        dialWindowMs: 1,
        maxLinks: 0,
        // Asking only: the hosts answer but never put doctor's throwaway listener in their tables.
        probe: true,
      },
      {
        key,
        sender,
        linker: listening.linker,
        links: { adopt: () => false, has: () => false, size: 0 },
        events: (e: NodeEvent) => {
          if (e.event === "reply") replies.set(via, { from: e.from, peers: e.peers, ms: ms(t0) });
        },
      },
    );
    return { via, peer, session: undefined as Uint8Array | undefined };
  });
  const reader = new InboxReader(inbox, { marker: str(r, "marker")!, key });
  // Old replies in the box must not count: read what is there first, as join does.
  const handler = (m: InboundMail): Promise<Disposition> => {
    if (m.message instanceof ProtocolError || m.message.kind !== "reply") return Promise.resolve("keep");
    const reply = m.message;
    const probe = probes.find((p) => p.session && equalBytes(p.session, reply.session));
    return Promise.resolve(probe ? probe.peer.handle(m) : "keep");
  };
  await reader.pass(handler);
  for (const p of probes) {
    try {
      p.session = (await p.peer.announce()).session;
    } catch (err) {
      report({
        check: "via",
        status: "fail",
        title: `host ${p.via}: cannot mail a request: ${sentenceFor(err)}`,
        fix: "Check that --via is an address your SMTP server accepts mail for.",
      });
    }
  }
  const asked = probes.filter((p) => p.session);
  if (asked.length === 0) return;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), waitMs);
  try {
    for await (const _ of inbox.watch(stop.signal)) {
      if (stop.signal.aborted) break;
      await reader.pass(handler);
      if (asked.every((p) => replies.has(p.via))) break;
    }
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
  for (const p of asked) {
    const got = replies.get(p.via);
    report(
      got
        ? {
          check: "via",
          status: "ok",
          title: `host ${p.via} answered in ${fmtMs(got.ms)} (${got.peers} other peer(s) online)`,
          ms: got.ms,
        }
        : {
          check: "via",
          status: "fail",
          title: `host ${p.via} did not answer within ${waitMs / 1000} s`,
          fix:
            `Is a host reading that mailbox (\`mailmeet --host\` on the spare PC, or a peer whose own address it is)? Does it use the same network key (fingerprint ${key.fingerprint})?`,
        },
    );
  }
}

/* ---------- helpers ---------- */

function ms(t0: number): number {
  return Math.round(performance.now() - t0);
}

function fmtMs(n: number): string {
  return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`;
}

async function withDeadline<T>(p: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
