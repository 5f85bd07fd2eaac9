/** Opening a mailbox from its URL: the only place that knows which transport is behind it. */
import { parseAccount } from "./account.ts";
import { MailError } from "./errors.ts";
import type { Mailbox, MailboxOptions } from "./mailbox.ts";
import { openImapMailbox } from "./imap.ts";
import { openMaildirMailbox } from "./maildir.ts";
import { openPop3Mailbox } from "./pop3.ts";

export async function openMailbox(url: string, opts: MailboxOptions = {}): Promise<Mailbox> {
  const account = parseAccount(url);
  switch (account.scheme) {
    case "maildir":
      return await openMaildirMailbox(account, opts);
    case "imap":
    case "imaps":
      return await openImapMailbox(account, opts);
    case "pop3":
    case "pop3s":
      return await openPop3Mailbox(account, opts);
    default:
      throw new MailError(
        `--inbox needs an imap://, imaps://, pop3://, pop3s:// or maildir:// URL, not ${account.scheme}://.`,
        "config",
      );
  }
}
