import { sinkFor } from "../context.ts";
import type { Resolved } from "../options.ts";
import { aborted, runApp } from "./app_common.ts";

export const JOIN_HELP = `mailmeet join — meet your group through e-mail and hold direct links to them

Mails a sealed "here I am" to the --via host(s), dials the peers the host lists, and keeps
accepting peers that come later, until interrupted. Exits 3 if nobody connected within --timeout.
Requests that reach your own inbox are answered too (you become a host), unless --no-host.

Example:
  mailmeet join --address bob@isp-b.test --inbox imaps://bob%40isp-b.test:PASS@imap.isp-b.test/INBOX \\
    --smtp smtps://bob%40isp-b.test:PASS@smtp.isp-b.test --via lan-host@game.test --key-file group.key`;

export async function joinCommand(r: Resolved): Promise<number> {
  // A plain join runs no app; the node's links still speak the mux (streams no one takes are
  // refused cleanly, keepalives notice a peer that vanished, relaying works).
  return await runApp(r, sinkFor(r), undefined, async (run) => {
    await run.firstLink();
    // --timeout bounds only the first link: from here we hold links until interrupted (exit 130),
    // or until the inbox fails for good (its error goes up).
    await Promise.race([aborted(run.signal), run.ended]);
    return 0;
  });
}
