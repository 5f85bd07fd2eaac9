/**
 * A Sender that keeps to the mail budget: it refuses what the budget holds back (MailError
 * "budget"), counts what the server accepted, and after a provider's rate-limit answer stops
 * sending for a while (MailError "rate_limited") instead of hammering an account that is about to
 * be blocked.
 */
import type { MailBudget } from "./budget.ts";
import { MailError } from "./errors.ts";
import type { OutgoingMail, Sender, SentInfo } from "./smtp.ts";

export function budgetedSender(inner: Sender, budget: MailBudget): Sender {
  return {
    get label() {
      return inner.label;
    },
    async send(mail: OutgoingMail): Promise<SentInfo> {
      budget.check(mail.priority ?? "own", mail.to.length);
      const release = budget.hold(mail.to.length);
      try {
        const info = await inner.send(mail);
        release();
        budget.record(mail.to.length);
        return info;
      } catch (err) {
        release();
        if (err instanceof MailError && err.code === "rate_limited") {
          const until = budget.rateLimited();
          throw new MailError(
            `The mail provider limits sending from ${budget.account} (${
              err.response ?? err.message
            }); mailmeet sends again after ${new Date(until).toISOString().slice(11, 16)} UTC.`,
            "rate_limited",
            { cause: err, command: err.command, response: err.response },
          );
        }
        throw err;
      }
    },
    flush: inner.flush ? () => inner.flush!() : undefined,
    close: () => inner.close(),
    [Symbol.asyncDispose]: () => inner.close(),
  };
}
