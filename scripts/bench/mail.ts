/**
 * `deno task bench mail`: B (one mail hop, SMTP 250 → IDLE), and POP3 polling beside it at the
 * CLI's own default interval (--poll), the two interleaved (IMAP hop, POP3 hop, IMAP hop, …).
 */
import { mailStack } from "../../tests/helpers/mailstack.ts";
import { HopMeter } from "./mail_hop.ts";
import { line, ratio, summarize } from "./stats.ts";

export async function benchMail(args: { runs: number; pollMs: number }): Promise<void> {
  await using stack = await mailStack();
  console.log(`mail hop on Postfix + Dovecot at ${stack.host} (submission STARTTLS+AUTH → LMTP → maildir)`);
  await using imap = await HopMeter.open(stack, "imap");
  await using pop = await HopMeter.open(stack, "pop3", args.pollMs);
  const cold = await imap.hop();
  await pop.hop();
  const b: number[] = [];
  const submit: number[] = [];
  const p: number[] = [];
  for (let i = 0; i < args.runs; i++) {
    const h = await imap.hop();
    b.push(h.hop);
    submit.push(h.submit);
    p.push((await pop.hop()).hop);
  }
  const bs = summarize(b);
  console.log(line("first hop (cold), IMAP IDLE", summarize([cold.hop])));
  console.log(line("B: SMTP 250 → IDLE wake-up", bs));
  console.log(line("   (SMTP submit → 250)", summarize(submit)));
  const ps = summarize(p);
  console.log(
    line(`POP3 polling every ${args.pollMs} ms: 250 → seen`, ps, `p50 = ${ratio(ps.p50, bs.p50)} B`),
  );
}
