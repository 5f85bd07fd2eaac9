/**
 * Finding the Junk folder (issue 15): automated mail with one subject often lands there (Delta Chat
 * met it at Hotmail), and a node that reads only INBOX then waits for ever. The folder is the one
 * the server marks \Junk (SPECIAL-USE, RFC 6154 §2), else one with a name providers use for it.
 */
import { decodeMailboxName } from "./encode.ts";
import type { DataResponse } from "./parser.ts";
import { textValue } from "./parser.ts";

export interface ListedMailbox {
  /** The name as the user sees it (modified UTF-7 decoded, RFC 3501 §5.1.3). */
  name: string;
  /** Upper-cased attributes: \NOSELECT, \JUNK, … */
  attributes: string[];
}

/** Names providers give their junk folder, compared case-insensitively (Gmail, Outlook, Yahoo, GMX, …). */
export const USUAL_JUNK_NAMES = [
  "Junk",
  "Spam",
  "[Gmail]/Spam",
  "[Google Mail]/Spam",
  "Junk E-mail",
  "Junk Email",
  "Bulk Mail",
  "INBOX.Junk",
  "INBOX.Spam",
  "INBOX/Junk",
  "INBOX/Spam",
];

/** One `* LIST (attributes) "delimiter" name` response (RFC 3501 §7.2.2). */
export function parseListResponse(r: DataResponse): ListedMailbox | undefined {
  if (r.name !== "LIST" || r.values.length < 3) return undefined;
  const [attrs, , name] = r.values;
  const text = textValue(name ?? undefined);
  if (text === undefined || attrs?.type !== "list") return undefined;
  const attributes = attrs.items.flatMap((a) => a?.type === "atom" ? [a.value.toUpperCase()] : []);
  return { name: decodeMailboxName(text), attributes };
}

/** The junk folder among `boxes`, or undefined; never the folder being read (`reading`). */
export function findJunkFolder(boxes: readonly ListedMailbox[], reading = "INBOX"): string | undefined {
  const selectable = boxes.filter((b) =>
    !b.attributes.includes("\\NOSELECT") && !b.attributes.includes("\\NONEXISTENT") &&
    b.name.toLowerCase() !== reading.toLowerCase()
  );
  const special = selectable.find((b) => b.attributes.includes("\\JUNK"));
  if (special) return special.name;
  for (const usual of USUAL_JUNK_NAMES) {
    const hit = selectable.find((b) => b.name.toLowerCase() === usual.toLowerCase());
    if (hit) return hit.name;
  }
  return undefined;
}
