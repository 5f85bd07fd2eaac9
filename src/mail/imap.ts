/**
 * IMAP mailbox (IMAP4rev1, RFC 3501, and the RFC 9051 subset it shares; IDLE RFC 2177, UIDPLUS
 * RFC 4315, SASL-IR RFC 4959, LITERAL+ RFC 7888, SPECIAL-USE RFC 6154). Our own client on Deno TCP:
 * framing, parser, connection and commands live in ./imap/.
 */
import type { Account } from "./account.ts";
import type { Mailbox } from "./mailbox.ts";
import { ImapMailbox, type ImapMailboxOptions } from "./imap/mailbox.ts";
import { JunkAwareMailbox } from "./junk_mailbox.ts";

export type { ImapMailboxOptions, ImapTuning } from "./imap/mailbox.ts";

/**
 * Opens the folder of the URL; reading INBOX, the account's junk folder is read too, on a second
 * connection, when it has one (a failure there only costs the junk folder, said in the log).
 */
export async function openImapMailbox(account: Account, opts: ImapMailboxOptions = {}): Promise<Mailbox> {
  const inbox = await ImapMailbox.open(account, opts);
  if (opts.junk === false || account.path.toUpperCase() !== "INBOX") return inbox;
  let name: string | undefined;
  try {
    name = await inbox.junkFolder();
    if (!name) return inbox;
    const junk = await ImapMailbox.open({ ...account, path: name }, opts);
    opts.log?.(`Reading the junk folder "${name}" too, for mailmeet mail filed as spam.`);
    return new JunkAwareMailbox(inbox, junk, name);
  } catch (err) {
    opts.log?.(
      `Cannot read the junk folder${name ? ` "${name}"` : ""} of ${inbox.label} (${
        (err as Error).message
      }); reading the inbox only.`,
    );
    return inbox;
  }
}
