/**
 * The checks behind `mailmeet doctor`, one per step a working setup needs, in the order a failure
 * would show up: settings; for sending and for reading mail each, the name (DNS), the connection,
 * TLS and the certificate, the login (and IMAP IDLE); a real round trip (a mail to yourself, seen
 * in the inbox, deleted); the host(s) answering a real request (--via); the listen port; the address
 * others would dial. Each result carries what to do when it failed. A failed step skips the steps
 * that need it, so the first ✗ is the one to fix.
 */
import { list, num } from "./context.ts";
import type { Resolved } from "./options.ts";
import { type CheckResult, DOCTOR_WAIT_MS } from "./doctor/check.ts";
import { checkHosts } from "./doctor/host.ts";
import { checkReading, checkSending } from "./doctor/mail.ts";
import { checkNat } from "./doctor/nat.ts";
import { checkListen } from "./doctor/network.ts";
import { checkRoundTrip } from "./doctor/roundtrip.ts";
import { checkSettings } from "./doctor/settings.ts";
import { checkSignIn, skipped } from "./doctor/signin.ts";

export type { CheckResult, CheckStatus } from "./doctor/check.ts";
export { DOCTOR_WAIT_MS } from "./doctor/check.ts";
export { checkSignIn } from "./doctor/signin.ts";

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

  const settings = await checkSettings(r, report);
  if (!settings) return results;
  const { mail, key, user } = settings;

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
