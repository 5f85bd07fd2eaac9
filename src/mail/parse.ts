/** Reading received mail: headers (RFC 2047 words decoded) and the plain-text body, via postal-mime. */
import PostalMime from "postal-mime";

export interface ParsedMail {
  subject: string;
  /** The Date header; undefined when missing or unreadable. */
  date?: Date;
  from?: string;
  /** To and Cc addresses, lower-cased. */
  recipients: string[];
  messageId?: string;
  text: string;
}

export async function parseMail(raw: Uint8Array): Promise<ParsedMail> {
  const m = await PostalMime.parse(raw);
  const date = m.date ? new Date(m.date) : undefined;
  const addrs = [...(m.to ?? []), ...(m.cc ?? [])].flatMap((a) => a.group ? a.group : [a]);
  return {
    subject: m.subject ?? "",
    date: date && !Number.isNaN(date.getTime()) ? date : undefined,
    from: m.from && "address" in m.from ? m.from.address?.toLowerCase() : undefined,
    recipients: addrs.map((a) => (a.address ?? "").toLowerCase()).filter(Boolean),
    messageId: m.messageId,
    text: m.text ?? "",
  };
}

/** The header block of a raw message (everything before the first empty line). */
export function headerBlock(raw: Uint8Array): Uint8Array {
  for (let i = 0; i + 1 < raw.length; i++) {
    if (raw[i] === 0x0a && raw[i + 1] === 0x0a) return raw.subarray(0, i + 1);
    if (raw[i] === 0x0a && raw[i + 1] === 0x0d && raw[i + 2] === 0x0a) return raw.subarray(0, i + 1);
  }
  return raw;
}
