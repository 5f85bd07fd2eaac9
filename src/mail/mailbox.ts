/**
 * The one interface the roles use to read mail. IMAP, POP3 and maildir implement it; nothing
 * above src/mail/ knows which one it has.
 */
import type { AccessTokenSource } from "./access_token.ts";
import type { MailError } from "./errors.ts";

export interface MessageInfo {
  /**
   * Stable id within this mailbox: "<uidvalidity>:<uid>" for IMAP, the UIDL for POP3, the base
   * file name (without the ":2,flags" suffix) for maildir.
   */
  readonly id: string;
  readonly subject: string;
  /** Size in bytes as the server reports it (RFC822.SIZE, LIST, file size). */
  readonly size: number;
  /** The Date header, else the server's arrival time; undefined when neither can be read. */
  readonly date?: Date;
  /** Set when the message was found in the junk folder rather than the one read (its name). */
  readonly junk?: string;
}

export interface MailboxOptions {
  /** Whose mailbox to open in a maildir spool (IMAP/POP3 take the user from the URL). */
  address?: string;
  /** PEM certificates to trust besides the system roots (--tls-ca). */
  caCerts?: string[];
  /** Interval for servers without push (POP3, IMAP without IDLE, maildir fallback). */
  pollIntervalMs?: number;
  /** IMAP: how often IDLE is ended and begun again, which also checks the connection is alive. */
  idleRenewMs?: number;
  /** IMAP: also read marker mail in the junk folder (default true when reading INBOX). */
  junk?: boolean;
  /** One line per notable event (reconnects, skipped messages). Never receives passwords. */
  log?: (line: string) => void;
  /** Access tokens for an IMAP or POP3 URL with `auth=oauth2`. */
  tokens?: AccessTokenSource;
}

export interface Mailbox extends AsyncDisposable {
  /** The account URL without its password, for messages. */
  readonly label: string;

  /**
   * How many settled messages a reader gathers before commit(): small where removing is cheap
   * (IMAP UID EXPUNGE, maildir unlink), larger where each commit ends a session (POP3 QUIT).
   */
  readonly deleteBatch?: number;

  /** Messages whose Subject contains `marker` (case-insensitive), without downloading bodies. */
  list(marker: string): Promise<MessageInfo[]>;

  /**
   * Delivery status notifications in the box (RFC 3464 bounces: Content-Type multipart/report;
   * report-type=delivery-status), without downloading bodies. Their subject carries no marker: a
   * node reads them to learn that one of its own mails bounced.
   */
  listReports?(): Promise<MessageInfo[]>;

  /** One message's raw RFC 5322 bytes. Throws MailError "too_large" above `maxBytes`, "not_found" if gone. */
  fetch(id: string, maxBytes: number): Promise<Uint8Array>;

  /**
   * Several messages in one exchange with the server (IMAP: one UID FETCH instead of one per
   * message), in the order asked: each as fetch() gives it, or the MailError fetch() would throw
   * for it ("too_large", "not_found"). Any other failure throws.
   */
  fetchMany?(ids: readonly string[], maxBytes: number): Promise<(Uint8Array | MailError)[]>;

  /** Marks messages for deletion; nothing is removed until commit(). Unknown ids are ignored. */
  delete(ids: readonly string[]): Promise<void>;

  /** Makes the deletions marked so far permanent. */
  commit(): Promise<void>;

  /**
   * Moves messages out of the way into another folder instead of deleting them (where the
   * transport has folders: IMAP). They leave this mailbox at once or at commit().
   */
  quarantine?(ids: readonly string[], folder: string): Promise<void>;

  /**
   * Yields once at once, then each time new mail may have arrived (IMAP IDLE push, else polling),
   * and after every reconnect. The caller does its list/fetch/delete between yields; the
   * iterator ends when `signal` aborts.
   */
  watch(signal: AbortSignal): AsyncIterable<void>;

  close(): Promise<void>;
}

/** The default size cap for fetching a mailmeet message: ours are a few KiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;

/** Case-insensitive subject match, the same rule IMAP SEARCH SUBJECT applies (RFC 3501 §6.4.4). */
export function subjectHasMarker(subject: string, marker: string): boolean {
  return subject.toLowerCase().includes(marker.toLowerCase());
}
