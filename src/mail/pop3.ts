/**
 * POP3 mailbox (RFC 1939, with CAPA RFC 2449, STLS RFC 2595, AUTH PLAIN RFC 5034). The framing,
 * the session and the Mailbox logic live in ./pop3/.
 */
import type { Account } from "./account.ts";
import type { Mailbox, MailboxOptions } from "./mailbox.ts";
import { Pop3Mailbox } from "./pop3/mailbox.ts";

export async function openPop3Mailbox(account: Account, opts: MailboxOptions = {}): Promise<Mailbox> {
  return await Pop3Mailbox.open(account, opts);
}
