/**
 * `mailmeet status`: what the nodes running on this machine are doing, read from the status files
 * they keep in the data folder: roles, peers linked, the last request and reply, the host's table.
 */
import { flag, str } from "../context.ts";
import { UsageError } from "../errors.ts";
import type { Resolved } from "../options.ts";
import { paint } from "../output.ts";
import { statusDirFor } from "../paths.ts";
import { type AppStatus, readStatuses, type StatusSnapshot } from "../status.ts";
import { formatBytes } from "../../apps/file_proto.ts";

export const STATUS_HELP = `mailmeet status — what the mailmeet nodes on this machine are doing

Every running join, host (and chat, send, receive, tunnel) keeps a small status file in the data
folder (~/.local/share/mailmeet/run on Linux); status reads them: the roles (peer, host), the peers
linked now, when the last request went out and the last reply came in, and the host's table size.
With --address, only that node. Exits 1 when no node is running.

Examples:
  mailmeet status
  mailmeet status --json`;

function ago(iso: string | undefined, now: number): string {
  if (!iso) return "never";
  const t = Date.parse(iso);
  const s = Math.max(0, Math.round((now - t) / 1000));
  const span = s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 3600)} h`;
  return `${new Date(t).toTimeString().slice(0, 8)} (${span} ago)`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function share(bytes: number, total: number): string {
  const pct = total > 0 ? Math.floor((bytes / total) * 100) : 100;
  return `${formatBytes(bytes)} of ${formatBytes(total)} (${pct}%)`;
}

/** One line for what the app of a node does. */
export function describeApp(a: AppStatus): string {
  switch (a.app) {
    case "send":
      return a.state === "waiting"
        ? `send: waiting for ${a.peer} to connect (${formatBytes(a.total)} to send)`
        : a.state === "offering"
        ? `send: offered ${formatBytes(a.total)} to ${a.peer}, waiting for an answer`
        : `send: sending to ${a.peer}, ${share(a.bytes, a.total)}`;
    case "receive":
      return a.state === "waiting"
        ? `receive: waiting for a peer to send files into ${a.out}`
        : a.state === "offered"
        ? `receive: ${a.peer} offers ${formatBytes(a.total)}, waiting for the answer`
        : `receive: from ${a.peer} into ${a.out}, ${share(a.bytes, a.total)}`;
    case "tunnel":
      return a.side === "expose"
        ? `tunnel: linked peers reach ${a.proto} port ${a.port} here; ${plural(a.open, "connection")} open`
        : `tunnel: ${a.proto} 127.0.0.1:${a.port} reaches ${a.peer ?? "the first linked peer"}; ${
          plural(a.open, "connection")
        } open`;
    case "chat":
      return a.room.length === 0
        ? "chat: nobody else in the room yet"
        : `chat: in the room with ${a.room.join(", ")}`;
  }
}

export function describeStatus(s: StatusSnapshot, now: number): string[] {
  const lines: string[] = [];
  const who = s.user ? `${s.user} <${s.address}>` : s.address;
  lines.push(
    `${paint("1", who)} — ${s.roles.join(" + ")} (mailmeet ${s.command}, pid ${s.pid}), up since ${
      ago(s.started, now)
    }`,
  );
  if (s.listening) {
    lines.push(
      `  listening on ${s.listening.address}:${s.listening.port}, advertising ${s.listening.advertise}`,
    );
  }
  if (s.roles.includes("peer")) {
    lines.push(`  peers linked: ${s.peers.length}`);
    for (const p of s.peers) {
      const route = p.path === undefined
        ? ""
        : `${p.path === "relay" ? "relayed" : `direct (${p.kind})`} over ${p.transport}${
          p.rtt_ms === undefined ? "" : `, ${p.rtt_ms} ms`
        }, `;
      lines.push(
        `    ${p.peer} at ${p.address} — ${route}${
          p.direction === "out" ? "we dialed" : "they dialed"
        }, linked since ${ago(p.since, now)}`,
      );
    }
    lines.push(`  last request sent: ${ago(s.last_request, now)}; last reply: ${ago(s.last_reply, now)}`);
  }
  if (s.unreachable?.length) {
    lines.push(`  known but not reachable: ${s.unreachable.length} (they may still dial us)`);
    for (const u of s.unreachable) {
      lines.push(`    ${u.peer} at ${u.address} — ${u.reason}; tried ${ago(u.since, now)}`);
    }
  }
  if (s.app) lines.push(`  ${describeApp(s.app)}`);
  if (s.host) {
    const size = s.host.table_size === undefined
      ? ""
      : `the table holds ${plural(s.host.table_size, "peer")}; `;
    const traffic = s.host.requests === 0
      ? "no requests yet"
      : `${plural(s.host.requests, "request")} answered with ${
        plural(s.host.replies, "reply", "replies")
      }, the last ${ago(s.host.last_request, now)}`;
    lines.push(`  host: ${size}${traffic}`);
  }
  if (s.mail) {
    const paused = s.mail.paused_until
      ? `; the provider limits sending: paused until ${
        new Date(s.mail.paused_until).toTimeString().slice(0, 5)
      }`
      : "";
    lines.push(
      `  mail sent today (last 24 h): ${s.mail.sent_today} of ${s.mail.budget} (--mail-budget)${paused}`,
    );
  }
  if (s.last_error) lines.push(`  last error: ${s.last_error}`);
  return lines;
}

export async function statusCommand(r: Resolved): Promise<number> {
  const dir = statusDirFor(Deno.env.toObject());
  const now = Date.now();
  const only = r.sources.address === "flag" ? str(r, "address")?.toLowerCase() : undefined;
  const found = (await readStatuses(dir, now)).filter((f) =>
    f.alive && (!only || f.snapshot.address.toLowerCase() === only)
  );
  if (found.length === 0) {
    throw new UsageError(
      `No mailmeet node${
        only ? ` for ${only}` : ""
      } is running on this machine (no live status file in ${dir}); start one with \`mailmeet join\` or \`mailmeet --host\`.`,
    );
  }
  if (flag(r, "json")) {
    for (const f of found) console.log(JSON.stringify({ event: "status", ...f.snapshot }));
    return 0;
  }
  console.log(found.flatMap((f) => describeStatus(f.snapshot, now)).join("\n"));
  return 0;
}
