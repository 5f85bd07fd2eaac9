/**
 * One mail hop on a maildir spool (the lab's mail): delivered by the sender → the recipient's
 * watch wakes with it. B for the benchmarks whose mail never leaves this machine.
 */
import { openMailbox } from "../../src/mail/open.ts";
import { openSender } from "../../src/mail/smtp.ts";

export async function maildirHop(spool: string, runs: number): Promise<number[]> {
  const url = `maildir://${spool}`;
  await using sender = openSender(url);
  await using box = await openMailbox(url, { address: "hop-to@lab.test" });
  const ctl = new AbortController();
  const it = box.watch(ctl.signal)[Symbol.asyncIterator]();
  await it.next(); // the immediate first wake-up
  const out: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const subject = `mailmeet bench hop ${i}`;
      const t0 = performance.now();
      await sender.send({ from: "hop-from@lab.test", to: ["hop-to@lab.test"], subject, text: `hop ${i}` });
      let seen: string | undefined;
      while (!seen) {
        const r = await it.next();
        if (r.done) throw new Error("the watch ended");
        seen = (await box.list(subject)).find((m) => m.subject === subject)?.id;
      }
      out.push(performance.now() - t0);
      await box.delete([seen]);
      await box.commit();
    }
  } finally {
    ctl.abort();
    await it.return?.();
  }
  return out;
}
