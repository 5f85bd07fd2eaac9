import { NoPeerError } from "../errors.ts";
import { num, sinkFor } from "../context.ts";
import type { Resolved } from "../options.ts";
import { interruptSignal } from "../signals.ts";
import { startNode } from "../node.ts";
import { attachMux } from "../../apps/links.ts";

export const JOIN_HELP = `mailmeet join — meet your group through e-mail and hold direct links to them

Mails a sealed "here I am" to the --via host(s), dials the peers the host lists, and keeps
accepting peers that come later, until interrupted. Exits 3 if nobody connected within --timeout.
Requests that reach your own inbox are answered too (you become a host), unless --no-host.

Example:
  mailmeet join --address bob@isp-b.test --inbox imaps://bob%40isp-b.test:PASS@imap.isp-b.test/INBOX \\
    --smtp smtps://bob%40isp-b.test:PASS@smtp.isp-b.test --via lan-host@game.test --key-file group.key`;

export async function joinCommand(r: Resolved): Promise<number> {
  const events = sinkFor(r);
  using stop = interruptSignal();
  const ctl = new AbortController();
  stop.signal.addEventListener("abort", () => ctl.abort());
  // A plain join runs no app, but still speaks the mux: streams others open are refused cleanly,
  // and keepalives notice a peer that vanished without a word.
  await using node = await startNode(r, events, (link) => void attachMux(link), ctl.signal);
  const timeoutMs = num(r, "timeout");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) =>
    timer = setTimeout(() => resolve("timeout"), timeoutMs)
  );
  const aborted = new Promise<"stop">((resolve) =>
    ctl.signal.addEventListener("abort", () => resolve("stop"))
  );
  try {
    const first = await Promise.race([
      node.peer.firstLink.then(() => "link" as const),
      timedOut,
      aborted,
      node.inboxLoop.then(() => "stop" as const),
    ]);
    if (first === "timeout") {
      ctl.abort();
      // Still waiting for the mail server at the deadline: that is the reason (exit 2), not the peers.
      const mail = node.mailError();
      if (mail) throw mail;
      throw new NoPeerError(
        `No peer connected within ${Math.round(timeoutMs / 1000)} s; try again later or check --via.`,
      );
    }
  } finally {
    clearTimeout(timer);
  }
  // --timeout bounds only the first link: from here we hold links until interrupted.
  await Promise.race([aborted, node.inboxLoop]);
  ctl.abort();
  return 0;
}
