/**
 * What the user sees: readable lines on stderr-free stdout, or with --json one object per line
 * (each with an `event` field). Colour only on a terminal and never with NO_COLOR.
 */
import type { EventSink, NodeEvent } from "../roles/events.ts";

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  /** Prefix for human lines (the demo runs several nodes in one terminal). */
  name?: string;
  write?: (line: string) => void;
  now?: () => Date;
}

/** Colour only on a terminal, and never when NO_COLOR is set to anything (https://no-color.org). */
export function useColor(stream: { isTerminal(): boolean } = Deno.stdout): boolean {
  let noColor: string | undefined;
  try {
    noColor = Deno.env.get("NO_COLOR");
  } catch {
    // no --allow-env: stay plain
    return false;
  }
  return stream.isTerminal() && !noColor;
}

/** `text` in an ANSI colour ("32" green, "31" red, "33" yellow, "2" dim) when colour is on. */
export function paint(code: string, text: string, on: boolean = useColor()): string {
  return on ? `\x1b[${code}m${text}\x1b[0m` : text;
}

const QUIET_OK = new Set(["error", "connected", "bounced"]);
const VERBOSE_ONLY = new Set([
  "listening",
  "rtt",
  "info",
  "reply_ignored",
  "host_dropped",
  "mail_sent",
  "punch",
  "candidates",
  "host_intro",
]);

/** "1 peer", "3 peers". */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function describe(e: NodeEvent): string {
  switch (e.event) {
    case "listening":
      return `listening on ${e.address}:${e.port}, advertising ${e.advertise}`;
    case "request_sent":
      return `asked ${e.via.join(", ")} who else is online`;
    case "reply":
      return e.peers === 0
        ? `${e.from} answered: nobody else yet`
        : `${e.from} answered with ${count(e.peers, "peer")}`;
    case "reply_ignored":
      return `ignored a reply: ${e.reason}`;
    case "waiting":
      return e.reason;
    case "dial":
      return `dialing ${e.peer} at ${e.address}`;
    case "dial_failed":
      return `could not reach ${e.peer} at ${e.address}: ${e.reason}`;
    case "failure_sent":
      return `told ${e.via} that ${e.peer} did not answer`;
    case "connected":
      return `connected to ${e.peer} (${
        e.path === "relay" ? `relayed ${e.address}` : `${e.kind} ${e.address}`
      }, ${e.transport}, ${e.direction === "out" ? "we dialed" : "they dialed"}, ${e.rtt_ms} ms)`;
    case "rtt":
      return `round trip to ${e.peer} now ${e.rtt_ms} ms`;
    case "link_replaced":
      return `now linked to ${e.peer} over a better path (${
        e.path === "relay" ? "relayed" : e.kind
      }, ${e.transport})`;
    case "introduced":
      return `${e.via} says ${e.peer} is joining: reaching out`;
    case "candidates":
      return `reachable at ${e.candidates.join(", ")}${
        e.public ? `; public address ${e.public}` : ""
      }; NAT mapping ${e.mapping}${e.port_mapping ? `; router mapping via ${e.port_mapping}` : ""}`;
    case "punch":
      return `punch ${e.peer}: ${e.stage}${e.detail ? ` ${e.detail}` : ""}`;
    case "relayed":
      return e.outcome === "spliced"
        ? `relaying ${e.from} → ${e.to}`
        : `refused to relay ${e.from} → ${e.to}: ${e.reason}`;
    case "host_intro":
      return `introduced ${e.newcomer} to ${e.peer}`;
    case "host_leave":
      return e.forgotten ? `${e.peer} left: forgotten` : `${e.peer} said it leaves (not in the table)`;
    case "disconnected":
      return `${e.peer} left${e.reason ? `: ${e.reason}` : ""}`;
    case "link_refused":
      return `refused a connection from ${e.address}: ${e.reason}`;
    case "host_request":
      return e.outcome === "older"
        ? `request from ${e.peer} is older than the one we hold; answered, not stored`
        : `${e.outcome === "retry" ? "again: " : ""}request from ${e.peer} at ${e.address}`;
    case "host_reply":
      return `answered ${e.peer} with ${count(e.peers, "peer")}`;
    case "host_failure":
      return e.flagged
        ? `${e.reporter} could not reach ${e.peer}: flagged`
        : `${e.reporter} could not reach ${e.peer}, who is not in the table`;
    case "host_dropped":
      return `dropped a message (${e.detail}): ${e.reason}`;
    case "promoted":
      return `now also hosting: ${e.reason}`;
    case "hosting":
      return `hosting for ${e.address}, reading ${e.inbox}; the table is ${e.table} (see it with \`mailmeet table\`)`;
    case "bounced":
      return e.final
        ? `mail to ${e.address} bounced: ${e.reason}${
          e.status && !e.reason.includes(e.status) ? ` (${e.status})` : ""
        }`
        : `mail to ${e.address} is delayed: ${e.reason}; the mail servers keep trying`;
    case "mail_unreadable":
      return `could not open a mailmeet mail from ${e.from}: ${e.reason}`;
    case "mail_sent":
      return `sent a ${e.kind} to ${count(e.recipients, "mailbox", "mailboxes")}`;
    case "budget_held":
      return e.message;
    case "error":
      return `error: ${e.message}`;
    case "info":
      return e.message;
  }
}

export function eventSink(opts: OutputOptions): EventSink {
  const write = opts.write ?? ((line: string) => console.log(line));
  const now = opts.now ?? (() => new Date());
  const color = !opts.write && useColor();
  return (e) => {
    if (opts.json) {
      write(JSON.stringify({ time: now().toISOString(), ...e }));
      return;
    }
    if (opts.quiet && !QUIET_OK.has(e.event)) return;
    if (!opts.verbose && VERBOSE_ONLY.has(e.event)) return;
    const t = now().toTimeString().slice(0, 8);
    let text = describe(e);
    if (color && e.event === "connected") text = `\x1b[32m${text}\x1b[0m`;
    if (
      color && (e.event === "error" || e.event === "dial_failed" || e.event === "bounced" ||
        e.event === "mail_unreadable")
    ) text = `\x1b[31m${text}\x1b[0m`;
    write(`${t} ${opts.name ? `${opts.name}: ` : ""}${text}`);
  };
}
