/**
 * The mailbox commands mailmeet needs, each a small function over ImapClient: build the command
 * (arguments through the encoder, never pasted in), read what came back. All work on UIDs
 * (RFC 3501 §6.4.8), which stay valid across sessions while UIDVALIDITY does not change (§2.3.1.1).
 */
import { MailError } from "../errors.ts";
import type { CommandResult, ImapClient } from "./client.ts";
import { type ListedMailbox, parseListResponse } from "./junk.ts";
import { chunks, encodeMailboxName, stringArg, uidSet } from "./encode.ts";
import {
  bytesValue,
  type DataResponse,
  fetchAttributes,
  type ImapResponse,
  type ImapValue,
  numberValue,
  textValue,
} from "./parser.ts";

/** UIDs per command: keeps lines short even when UIDs do not form runs. */
const UIDS_PER_COMMAND = 500;
/** Subject and Date never come near this; it only bounds a hostile answer. */
export const MAX_HEADER_LITERAL = 256 * 1024;

export interface Selected {
  readonly uidValidity: number;
  readonly exists: number;
  readonly uidNext?: number;
}

/** SELECT (RFC 3501 §6.3.1): UIDVALIDITY and EXISTS come as untagged data before the OK. */
export async function select(client: ImapClient, mailbox: string): Promise<Selected> {
  const r = await client.command(["SELECT ", stringArg(encodeMailboxName(mailbox))], { acceptNo: true });
  if (r.tagged.status !== "OK") {
    throw new MailError(
      `Cannot open the mailbox "${mailbox}" on ${client.where}: "${client.scrub(r.tagged.text)}". ` +
        `Check the path in the IMAP URL (default INBOX).`,
      r.tagged.code?.name === "UNAVAILABLE" ? "temporary" : "config",
      { command: `SELECT ${mailbox}`, response: r.tagged.text },
    );
  }
  let uidValidity: number | undefined;
  let uidNext: number | undefined;
  let exists = 0;
  for (const u of r.untagged) {
    if (u.kind === "data" && u.name === "EXISTS" && u.number !== undefined) exists = u.number;
    if (u.kind === "status" && u.code) {
      const n = /^\d{1,15}$/.test(u.code.args) ? Number(u.code.args) : undefined;
      if (u.code.name === "UIDVALIDITY") uidValidity = n;
      if (u.code.name === "UIDNEXT") uidNext = n;
    }
  }
  if (uidValidity === undefined) {
    // RFC 3501 §2.3.1.1: without it no id we hand out could be trusted in a later session.
    throw new MailError(`${client.where} did not report UIDVALIDITY for "${mailbox}".`, "protocol", {
      command: "SELECT",
    });
  }
  return uidNext === undefined ? { uidValidity, exists } : { uidValidity, exists, uidNext };
}

/**
 * LIST "" "*" (RFC 3501 §6.3.8): every folder, with its attributes — a server with SPECIAL-USE
 * (RFC 6154 §2) puts \Junk, \Sent, … among them.
 */
export async function listMailboxes(client: ImapClient): Promise<ListedMailbox[]> {
  const r = await client.command('LIST "" "*"');
  return r.untagged.flatMap((u) => {
    if (u.kind !== "data") return [];
    const m = parseListResponse(u);
    return m ? [m] : [];
  });
}

/** The UIDs of a UID SEARCH's untagged SEARCH responses (RFC 3501 §7.2.5), each once, ascending. */
function searchUids(r: CommandResult): number[] {
  const uids: number[] = [];
  for (const u of r.untagged) {
    if (u.kind !== "data" || u.name !== "SEARCH") continue;
    for (const v of u.values) {
      const n = numberValue(v);
      if (n !== undefined) uids.push(n);
    }
  }
  return [...new Set(uids)].sort((a, b) => a - b);
}

/**
 * UID SEARCH SUBJECT (RFC 3501 §6.4.4): a case-insensitive substring match done by the server.
 * A non-ASCII marker is sent as a UTF-8 literal with CHARSET UTF-8.
 */
export async function searchSubject(client: ImapClient, marker: string): Promise<number[]> {
  const ascii = [...marker].every((ch) => ch.charCodeAt(0) < 0x80);
  const head = ascii ? "UID SEARCH SUBJECT " : "UID SEARCH CHARSET UTF-8 SUBJECT ";
  const r = await client.command([head, stringArg(marker)]);
  return searchUids(r);
}

/**
 * UID SEARCH HEADER (RFC 3501 §6.4.4): messages whose `field` holds `value` (a substring match),
 * e.g. Content-Type "delivery-status" for bounces.
 */
export async function searchHeader(client: ImapClient, field: string, value: string): Promise<number[]> {
  const r = await client.command(["UID SEARCH HEADER ", stringArg(field), " ", stringArg(value)]);
  return searchUids(r);
}

export interface HeaderInfo {
  readonly uid: number;
  readonly size: number;
  readonly internalDate?: Date;
  /** The Subject and Date header lines, raw. */
  readonly header: Uint8Array;
}

/** Size, arrival time and the two headers we need, without downloading bodies or setting \Seen (PEEK). */
export async function fetchHeaders(client: ImapClient, uids: readonly number[]): Promise<HeaderInfo[]> {
  const out: HeaderInfo[] = [];
  for (const part of chunks(uids, UIDS_PER_COMMAND)) {
    const r = await client.command(
      `UID FETCH ${uidSet(part)} (UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT DATE)])`,
      { maxLiteral: MAX_HEADER_LITERAL },
    );
    const wanted = new Set(part);
    for (const f of fetches(r.untagged)) {
      const uid = numberValue(f.get("UID"));
      const size = numberValue(f.get("RFC822.SIZE"));
      if (uid === undefined || size === undefined || !wanted.has(uid)) continue; // e.g. an unsolicited flag update
      const headerKey = [...f.keys()].find((k) => k.startsWith("BODY[HEADER.FIELDS"));
      const header = headerKey ? bytesValue(f.get(headerKey)) : undefined;
      const date = textValue(f.get("INTERNALDATE"));
      const internalDate = date ? parseInternalDate(date) : undefined;
      const info: HeaderInfo = { uid, size, header: header ?? new Uint8Array() };
      out.push(internalDate ? { ...info, internalDate } : info);
    }
  }
  return out;
}

/** RFC822.SIZE of one message, or undefined when no message has that UID (any more). */
export async function fetchSize(client: ImapClient, uid: number): Promise<number | undefined> {
  const r = await client.command(`UID FETCH ${uid} (UID RFC822.SIZE)`);
  for (const f of fetches(r.untagged)) {
    if (numberValue(f.get("UID")) === uid) return numberValue(f.get("RFC822.SIZE"));
  }
  return undefined;
}

/**
 * The whole message, exactly as stored (BODY.PEEK[] leaves \Seen alone, RFC 3501 §6.4.5).
 * `maxBytes` caps the literal the reader will accept, whatever RFC822.SIZE said before.
 */
export async function fetchBody(
  client: ImapClient,
  uid: number,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  const r = await client.command(`UID FETCH ${uid} (UID BODY.PEEK[])`, { maxLiteral: maxBytes });
  for (const f of fetches(r.untagged)) {
    if (numberValue(f.get("UID")) !== uid) continue;
    const body = f.get("BODY[]");
    if (body !== undefined) return bytesValue(body);
  }
  return undefined;
}

/**
 * Several bodies in one UID FETCH (each literal capped at `maxBytes`), by UID; a UID the server
 * did not answer for (expunged meanwhile) is absent.
 */
export async function fetchBodies(
  client: ImapClient,
  uids: readonly number[],
  maxBytes: number,
): Promise<Map<number, Uint8Array>> {
  const out = new Map<number, Uint8Array>();
  for (const part of chunks(uids, UIDS_PER_COMMAND)) {
    const r = await client.command(`UID FETCH ${uidSet(part)} (UID BODY.PEEK[])`, { maxLiteral: maxBytes });
    for (const f of fetches(r.untagged)) {
      const uid = numberValue(f.get("UID"));
      const raw = f.get("BODY[]");
      const body = raw === undefined ? undefined : bytesValue(raw);
      if (uid !== undefined && body !== undefined) out.set(uid, body);
    }
  }
  return out;
}

/** Marks for deletion; SILENT spares us the FETCH echo of every flag (RFC 3501 §6.4.6). */
export async function storeDeleted(client: ImapClient, uids: readonly number[]): Promise<void> {
  for (const part of chunks(uids, UIDS_PER_COMMAND)) {
    await client.command(`UID STORE ${uidSet(part)} +FLAGS.SILENT (\\Deleted)`);
  }
}

/**
 * Removes our deleted messages. UID EXPUNGE (RFC 4315 §2.1) touches only the UIDs named, so a
 * message someone else flagged \Deleted stays; without UIDPLUS only plain EXPUNGE exists, which
 * removes every \Deleted message in the mailbox (RFC 3501 §6.4.3).
 */
export async function expunge(client: ImapClient, uids: readonly number[]): Promise<void> {
  if (client.capabilities.has("UIDPLUS")) {
    for (const part of chunks(uids, UIDS_PER_COMMAND)) await client.command(`UID EXPUNGE ${uidSet(part)}`);
  } else {
    await client.command("EXPUNGE");
  }
}

/**
 * Moves messages to another mailbox, creating it when missing: UID MOVE (RFC 6851) where offered,
 * else UID COPY then \Deleted (the caller's commit() expunges them here).
 */
export async function moveTo(
  client: ImapClient,
  uids: readonly number[],
  mailbox: string,
): Promise<"moved" | "copied"> {
  const name = stringArg(encodeMailboxName(mailbox));
  // NO [ALREADYEXISTS] is the usual answer after the first time (RFC 5530).
  await client.command(["CREATE ", name], { acceptNo: true });
  const move = client.capabilities.has("MOVE");
  for (const part of chunks(uids, UIDS_PER_COMMAND)) {
    await client.command([`UID ${move ? "MOVE" : "COPY"} ${uidSet(part)} `, name]);
  }
  if (!move) await storeDeleted(client, uids);
  return move ? "moved" : "copied";
}

function fetches(untagged: readonly ImapResponse[]): Map<string, ImapValue>[] {
  return untagged
    .filter((u): u is DataResponse => u.kind === "data" && u.name === "FETCH")
    .map(fetchAttributes);
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/** INTERNALDATE "17-Jul-1996 02:44:25 -0700" (RFC 3501 §9 date-time); undefined if malformed. */
export function parseInternalDate(text: string): Date | undefined {
  const m = /^\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(text);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2].toLowerCase());
  if (month < 0) return undefined;
  const offsetMin = (m[7] === "-" ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
  const utc = Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  const d = new Date(utc - offsetMin * 60_000);
  return Number.isNaN(d.getTime()) ? undefined : d;
}
