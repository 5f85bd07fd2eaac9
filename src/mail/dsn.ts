/**
 * Delivery status notifications (RFC 3464; RFC 6533 for the UTF-8 form): the "bounce" a mail
 * server sends back when it could not deliver a message. Only what a sender needs: which message
 * it is about (the Message-ID in the returned headers), and per recipient what happened (Action),
 * the status code (RFC 3463) and the server's own words (Diagnostic-Code). Bytes in, data out.
 */

export interface RecipientStatus {
  /** The address it was for (Final-Recipient, else Original-Recipient), lower-cased. */
  recipient: string;
  /** "failed", "delayed", "delivered", "relayed" or "expanded" (RFC 3464 §2.3.3). */
  action: string;
  /** The status code, e.g. "5.1.2" (RFC 3463). */
  status?: string;
  /** What the refusing server said, without its type prefix ("smtp;"). */
  diagnostic?: string;
}

export interface DeliveryReport {
  /** Message-ID of the message the report is about, without the angle brackets. */
  messageId?: string;
  recipients: RecipientStatus[];
}

interface Part {
  headers: Map<string, string>;
  body: string;
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

/** Header fields of a block (RFC 5322 §2.2.3 unfolding); names lower-cased, the first of each kept. */
function parseFields(block: string): Map<string, string> {
  const out = new Map<string, string>();
  const unfolded = block.replace(/\r?\n(?=[ \t])/g, "");
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!out.has(name)) out.set(name, line.slice(colon + 1).trim());
  }
  return out;
}

function splitHead(text: string): { head: string; body: string } {
  const m = /\r?\n\r?\n/.exec(text);
  return m
    ? { head: text.slice(0, m.index), body: text.slice(m.index + m[0].length) }
    : { head: text, body: "" };
}

/** A parameter of a structured header value (RFC 2045 §5.1), e.g. the boundary. */
function param(value: string, name: string): string | undefined {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, "i").exec(value);
  return m ? (m[1] ?? m[2]).replace(/\\(.)/g, "$1") : undefined;
}

function mediaType(value: string | undefined): string {
  return (value ?? "text/plain").split(";")[0].trim().toLowerCase();
}

function decodeBody(body: string, encoding: string | undefined): string {
  switch ((encoding ?? "").trim().toLowerCase()) {
    case "base64": {
      try {
        const bin = atob(body.replace(/[^A-Za-z0-9+/=]/g, ""));
        return utf8.decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
      } catch {
        return "";
      }
    }
    case "quoted-printable":
      return body.replace(/=\r?\n/g, "").replace(
        /=([0-9A-Fa-f]{2})/g,
        (_, h) => String.fromCharCode(parseInt(h, 16)),
      );
    default:
      return body;
  }
}

/** The parts of a multipart body (RFC 2046 §5.1.1); the preamble and epilogue are dropped. */
function splitMultipart(body: string, boundary: string): Part[] {
  const delimiter = `--${boundary}`;
  const parts: Part[] = [];
  const lines = body.split(/\r?\n/);
  let current: string[] | null = null;
  for (const line of lines) {
    if (line.startsWith(delimiter)) {
      if (current) parts.push(toPart(current.join("\n")));
      if (line.startsWith(`${delimiter}--`)) return parts;
      current = [];
    } else current?.push(line);
  }
  if (current) parts.push(toPart(current.join("\n")));
  return parts;
}

function toPart(text: string): Part {
  const { head, body } = splitHead(text);
  const headers = parseFields(head);
  return { headers, body: decodeBody(body, headers.get("content-transfer-encoding")) };
}

/** The address of "rfc822; someone@example.org" (RFC 3464 §2.3.2), lower-cased. */
function address(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const semi = value.indexOf(";");
  const a = (semi >= 0 ? value.slice(semi + 1) : value).trim().replace(/^<|>$/g, "");
  return a === "" ? undefined : a.toLowerCase();
}

/** "smtp; 550 5.1.1 <x@y>: Recipient address rejected" → the text after the type. */
function diagnosticText(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const semi = value.indexOf(";");
  const text = (semi >= 0 ? value.slice(semi + 1) : value).replace(/\s+/g, " ").trim();
  return text === "" ? undefined : text;
}

const STATUS = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** The per-recipient groups of a message/delivery-status body (RFC 3464 §2.1). */
function recipients(body: string): RecipientStatus[] {
  const groups = body.split(/\r?\n(?:[ \t]*\r?\n)+/).map(parseFields);
  const out: RecipientStatus[] = [];
  for (const g of groups) {
    const recipient = address(g.get("final-recipient")) ?? address(g.get("original-recipient"));
    const action = g.get("action")?.split(/[\s(]/)[0].toLowerCase();
    if (!recipient || !action) continue; // the per-message group, or one we cannot use
    const status = g.get("status")?.split(/[\s(]/)[0];
    const diagnostic = diagnosticText(g.get("diagnostic-code"));
    out.push({
      recipient,
      action,
      ...(status && STATUS.test(status) ? { status } : {}),
      ...(diagnostic ? { diagnostic } : {}),
    });
  }
  return out;
}

/** True when a message's header block says it is a delivery status notification. */
export function isDeliveryReport(header: Uint8Array | string): boolean {
  const text = typeof header === "string" ? header : latin1.decode(header);
  const type = parseFields(splitHead(text).head).get("content-type");
  return type !== undefined && mediaType(type) === "multipart/report" &&
    /^(global-)?delivery-status$/i.test(param(type, "report-type") ?? "");
}

/**
 * The report in a raw message, or undefined when it is not an RFC 3464 delivery status
 * notification (a bounce written as plain prose is not read: it names no status we can trust).
 */
export function parseDeliveryReport(raw: Uint8Array): DeliveryReport | undefined {
  // latin1 keeps every byte; the fields we read are ASCII (RFC 3464 §2.1), UTF-8 only in text.
  const text = latin1.decode(raw);
  if (!isDeliveryReport(text)) return undefined;
  const { head, body } = splitHead(text);
  const boundary = param(parseFields(head).get("content-type")!, "boundary");
  if (!boundary) return undefined;
  const parts = splitMultipart(body, boundary);
  const status = parts.find((p) =>
    /^message\/(global-)?delivery-status$/.test(mediaType(p.headers.get("content-type")))
  );
  if (!status) return undefined;
  // The third part returns the message, or only its headers (RFC 3462 §2, RFC 3464 §2).
  const returned = parts.find((p) =>
    /^(message\/(rfc822|global)|text\/rfc822-headers|message\/global-headers)$/.test(
      mediaType(p.headers.get("content-type")),
    )
  );
  const messageId = returned
    ? parseFields(splitHead(returned.body).head).get("message-id")?.replace(/^<|>$/g, "").trim()
    : undefined;
  return { ...(messageId ? { messageId } : {}), recipients: recipients(status.body) };
}

/** What RFC 3463 status codes mean, for a report that gives no words of its own. */
const MEANING: [RegExp, string][] = [
  [/^\d\.1\.1$/, "no such mailbox"],
  [/^\d\.1\.2$/, "the domain does not exist or takes no mail"],
  [/^\d\.1\.\d+$/, "the address is not valid"],
  [/^\d\.2\.2$/, "the mailbox is full"],
  [/^\d\.2\.\d+$/, "the mailbox cannot take mail"],
  [/^\d\.3\.4$/, "the message is too large"],
  [/^\d\.4\.\d+$/, "the receiving server could not be reached"],
  [/^\d\.7\.\d+$/, "refused by the receiving server's policy"],
];

/** One phrase for why a recipient failed: the server's words, else the meaning of the status code. */
export function describeRecipientStatus(r: RecipientStatus): string {
  if (r.diagnostic) return r.diagnostic.replace(/\.$/, "");
  const meaning = r.status ? MEANING.find(([re]) => re.test(r.status!))?.[1] : undefined;
  if (meaning) return `${meaning} (${r.status})`;
  return r.status ? `status ${r.status}` : "no reason given";
}
