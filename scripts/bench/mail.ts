/** `deno task bench mail`: B (one mail hop, SMTP 250 → IDLE), and POP3 polling beside it. */
import { mailStack } from "../../tests/helpers/mailstack.ts";
import { measureHops } from "./mail_hop.ts";
import { line, ratio, summarize } from "./stats.ts";

export async function benchMail(args: { runs: number; pollMs: number }): Promise<void> {
  await using stack = await mailStack();
  console.log(`mail hop on Postfix + Dovecot at ${stack.host} (submission STARTTLS+AUTH → LMTP → maildir)`);
  const imap = await measureHops(stack, "imap", args.runs + 1);
  const b = summarize(imap.hop.slice(1));
  console.log(line("first hop (cold), IMAP IDLE", summarize(imap.hop.slice(0, 1))));
  console.log(line("B: SMTP 250 → IDLE wake-up", b));
  console.log(line("   (SMTP submit → 250)", summarize(imap.submit.slice(1))));
  const pop = await measureHops(stack, "pop3", args.runs + 1, args.pollMs);
  const p = summarize(pop.hop.slice(1));
  console.log(line(`POP3 polling every ${args.pollMs} ms: 250 → seen`, p, `p50 = ${ratio(p.p50, b.p50)} B`));
}
