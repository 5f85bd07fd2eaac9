import { ChatRoom } from "../../apps/chat.ts";
import { RTT_PROTOCOL, RttProber } from "../../node/rtt.ts";
import type { AppEvent } from "../../apps/app_host.ts";
import type { Resolved } from "../options.ts";
import { aborted, appOutput, runApp } from "./app_common.ts";

export const CHAT_HELP = `mailmeet chat — one chat room for your whole group

Meets your group like \`mailmeet join\` (same options; with a \`join\` running, chat uses its links),
then every line you type reaches everyone in the group — also members you hold no link to: every
node passes the room on over its links. Lines appear as "HH:MM:SS <user> text" (your own too;
"<user via bob>" when user is reached through bob), with "* user joined/left" notices, and
"* user is in the group but not reachable" when no one in the room is linked to a member.
Works piped too: lines on stdin are said, the room's lines come out on stdout (the meeting's own
messages go to stderr); lines said before anyone is linked go to the first peer who comes. End of
input (Ctrl-D) leaves the room. "/ping" (or "/ping USER") shows the round trip over each of your
links. With --json every line is an event: room, chat, said (your own line), joined, left,
unreachable, latency. --quiet hides notices, never chat lines.
Typed at a terminal, chat waits for the others as long as it takes ("no one else is online yet")
unless --timeout is given; piped, it exits 3 if nobody connected within --timeout (--timeout 0 or
--wait: for ever).

Example:
  mailmeet chat --address bob@isp-b.test --via lan-host@game.test --key-file group.key`;

const hhmmss = (iso: unknown) => new Date(String(iso)).toTimeString().slice(0, 8);
const now = () => hhmmss(new Date().toISOString());

function describe(e: AppEvent, color: boolean): string | undefined {
  const name = (p: unknown) => (color ? `\x1b[1m${p}\x1b[0m` : String(p));
  switch (e.event) {
    case "chat":
    case "said":
      return `${hhmmss(e.sent)} <${name(e.peer)}${e.via ? ` via ${e.via}` : ""}> ${e.text}`;
    case "joined":
      return `${now()} * ${e.peer} joined${e.direct ? "" : " (reached through others)"}`;
    case "latency":
      return `${now()} * ${e.peer}: ${
        typeof e.rtt_ms === "number" ? `${e.rtt_ms} ms` : "no answer"
      } (${e.path} ${e.transport})`;
    case "left":
      return `${now()} * ${e.peer} left${e.reason ? ` (${e.reason})` : ""}`;
    case "unreachable":
      return `${now()} * ${e.reason}`;
    default:
      return undefined;
  }
}

/** Calls `onLine` for each line of stdin; resolves at end of input. */
async function readStdinLines(onLine: (line: string) => void): Promise<void> {
  let rest = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      onLine(rest.slice(0, nl).replace(/\r$/, ""));
      rest = rest.slice(nl + 1);
    }
  }
  if (rest) onLine(rest);
}

/** `/ping [USER]` in the room: one round trip to each member (or USER), over its link. */
async function latency(room: ChatRoom, user: string | undefined, emit: (e: AppEvent) => void): Promise<void> {
  const links = room.links().filter((l) => user === undefined || l.user === user);
  if (links.length === 0) {
    emit({ event: "latency", peer: user ?? "nobody", path: "not", transport: "in the room" });
    return;
  }
  await Promise.all(links.map(async (l) => {
    let prober: RttProber;
    try {
      prober = new RttProber(l.mux.open(RTT_PROTOCOL, {}), (_seq, ms) => got.resolve(ms));
    } catch {
      return;
    }
    const got = Promise.withResolvers<number | undefined>();
    const timer = setTimeout(() => got.resolve(undefined), PING_LOST_MS);
    prober.send();
    void prober.ended.then(() => got.resolve(undefined));
    const ms = await got.promise;
    clearTimeout(timer);
    prober.close();
    emit({
      event: "latency",
      peer: l.user,
      path: l.route.path,
      transport: l.route.transport,
      ...(ms !== undefined ? { rtt_ms: Math.round(ms * 100) / 100 } : {}),
    });
  }));
}

/** A `/ping` probe unanswered this long is reported as no answer. */
const PING_LOST_MS = 2_000;

export async function chatCommand(r: Resolved): Promise<number> {
  const out = appOutput(r, "stderr");
  const typing = Deno.stdin.isTerminal();
  const color = !out.json && Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
  // The line just typed is still on the screen: it is replaced by its room form, not repeated.
  const retype = typing && !out.json && Deno.stdout.isTerminal();
  let onRoom = () => {};
  const room = new ChatRoom({
    emit: (e) => {
      if (retype && e.event === "said") Deno.stdout.writeSync(new TextEncoder().encode("\x1b[1A\x1b[2K"));
      out.app(e, describe(e, color));
      if (e.event === "room") onRoom();
    },
  });
  return await runApp(r, out.node, room, async (run) => {
    const status = run.status;
    onRoom = () => status.setApp({ app: "chat", room: [...room.users] });
    if (run.room) room.connect(run.room);
    try {
      const input = readStdinLines((line) => {
        const ping = /^\/ping(?:\s+(\S+))?\s*$/.exec(line);
        if (ping) void latency(room, ping[1], (e) => out.app(e, describe(e, color)));
        else if (line.trim() !== "") room.say(line);
      });
      input.catch(() => {});
      onRoom();
      // The first one in waits for the others: typed at a terminal, for as long as it takes.
      await run.firstLink({ interactive: typing });
      // End of input (Ctrl-D) leaves the room: exit 0. Ctrl-C: exit 130.
      await Promise.race([input.catch(() => {}), aborted(run.signal)]);
      return 0;
    } finally {
      await room.close();
    }
  }, {
    beforeLink: "Interrupted before anyone joined the room.",
    interrupted: "Interrupted; left the room.",
  });
}
