/**
 * IMAP mailbox (IMAP4rev1, RFC 3501, and the RFC 9051 subset it shares; IDLE RFC 2177, UIDPLUS
 * RFC 4315, SASL-IR RFC 4959, LITERAL+ RFC 7888). Our own client on Deno TCP: framing, parser,
 * connection and commands live in ./imap/.
 */
import type { Account } from "./account.ts";
import type { Mailbox } from "./mailbox.ts";
import { ImapMailbox, type ImapMailboxOptions } from "./imap/mailbox.ts";

export type { ImapMailboxOptions, ImapTuning } from "./imap/mailbox.ts";

export async function openImapMailbox(account: Account, opts: ImapMailboxOptions = {}): Promise<Mailbox> {
  return await ImapMailbox.open(account, opts);
}
