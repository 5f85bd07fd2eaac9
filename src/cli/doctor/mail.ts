/**
 * doctor's mail steps, for sending (--smtp) and for reading (--inbox) each: the name (DNS), the
 * connection, TLS and the certificate, the login, and for reading whether the server pushes (IMAP
 * IDLE); a maildir spool needs none of it, only a folder it can write to.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { type Account, parseAccount, where } from "../../mail/account.ts";
import { MailError } from "../../mail/errors.ts";
import { ImapClient } from "../../mail/imap/client.ts";
import { Pop3Session } from "../../mail/pop3/session.ts";
import { probeSmtp, SmtpProbeError } from "../../mail/smtp_probe.ts";
import { deadline, DeadlineError } from "../../util/deadline.ts";
import type { MailSettings } from "../context.ts";
import { type CheckResult, ms, STEP_TIMEOUT_MS } from "./check.ts";
import { connectFix, loginFix, tlsFix } from "./fixes.ts";

const PORTS_SEND = "the usual ports for sending are 465 (smtps://) and 587 (smtp://, STARTTLS)";
const PORTS_READ =
  "the usual ports for reading are 993 (imaps://), 143 (imap://, STARTTLS), 995 (pop3s://), 110 (pop3://)";

export async function checkSending(mail: MailSettings, report: (c: CheckResult) => void): Promise<boolean> {
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

export async function checkReading(mail: MailSettings, report: (c: CheckResult) => void): Promise<boolean> {
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
    const found = await deadline(lookup(account.host, { all: true }), STEP_TIMEOUT_MS);
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
      title: `${what}: cannot find the server ${account.host} (${
        err instanceof DeadlineError ? `no answer within ${STEP_TIMEOUT_MS / 1000} s` : (err as Error).message
      })`,
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
      fix: connectFix(err, side, account.port, ports),
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
