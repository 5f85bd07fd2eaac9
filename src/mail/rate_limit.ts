/**
 * Recognising a provider's "this account sends too much" among SMTP answers. These must not be
 * retried at once like other 4xx (RFC 5321 §4.2.1): every retry counts against the account, and
 * Gmail blocks it for up to 24 hours. Seen in the wild:
 *  - Gmail: `550 5.4.5 Daily user sending limit exceeded`, `421 4.7.0 Try again later, closing
 *    connection`, `421 4.7.28 … unusual rate of unsolicited mail`;
 *  - Outlook.com: `554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException`,
 *    `4.7.x` "Server busy" / "too many messages" answers;
 *  - Yahoo: `421 4.7.0 [TSS04] Messages … temporarily deferred due to unexpected volume`.
 */

const VOLUME_WORDS = /rate|limit|quota|too many|volume|deferred|unusual|try again later|busy|exceeded/i;

/** The enhanced status code (RFC 3463) in an SMTP answer, e.g. "5.4.5". */
export function enhancedCode(response: string): string | undefined {
  return /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(response)?.[1];
}

/** True when an SMTP answer says the provider limits how much this account may send. */
export function isRateLimitAnswer(code: number | undefined, response: string | undefined): boolean {
  if (!code || !response) return false;
  const enhanced = enhancedCode(response) ?? "";
  // Gmail's daily limit; RFC 3463 does not define 5.4.5 but Gmail uses it only for this.
  if (enhanced === "5.4.5") return true;
  // Outlook's submission quota: 5.2.0 alone may also be a full mailbox elsewhere, so the words decide.
  if (code === 554 && enhanced === "5.2.0") return /quota|limit|STOREDRV/i.test(response);
  // 4.7.x is "security or policy" (RFC 3463 §3.8): a policy against volume when the words say so,
  // and always on 421 (the server closes on us: Gmail and Yahoo's way of deferring a sender).
  if (code === 421 && (enhanced.startsWith("4.7.") || VOLUME_WORDS.test(response))) return true;
  if (code >= 400 && code < 500 && enhanced.startsWith("4.7.")) return VOLUME_WORDS.test(response);
  return false;
}
