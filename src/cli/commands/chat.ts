import { ChatRoom } from "../../apps/chat.ts";
import { RTT_PROTOCOL, RttProber } from "../../node/rtt.ts";
import type { AppEvent } from "../../apps/links.ts";
import type { Resolved } from "../options.ts";
import { aborted, appOutput, runApp } from "./app_common.ts";

export const CHAT_HELP = `mailmeet chat — one chat room with everyone you are linked to

Meets your group like \`mailmeet join\` (same options), then every line you type goes to every
linked peer, and their lines appear as "HH:MM:SS <user> text", with "* user joined/left" notices.
"/ping" (or "/ping USER") shows the round trip to each member over its link. Works piped too:
lines on stdin are said, the room's lines come out on stdout (the meeting's own messages go to
stderr); lines said before anyone is linked go to the first peer who comes. End of input (Ctrl-D)
leaves the room. With --json every line is an event: chat, joined, left, latency.
Exits 3 if nobody connected within --timeout.

Example:
  mailmeet chat --address bob@isp-b.test --via lan-host@game.test --key-file group.key`;

const hhmmss = (iso: unknown) => new Date(String(iso)).toTimeString().slice(0, 8);

function describe(e: AppEvent, color: boolean): string | undefined {
  const name = (p: unknown) => (color ? `\x1b[1m${p}\x1b[0m` : String(p));
  switch (e.event) {
    case "chat":
      return `${hhmmss(e.sent)} <${name(e.peer)}> ${e.text}`;
    case "joined":
      return `${hhmmss(new Date().toISOString())} * ${e.peer} joined`;
    case "latency":
      return `${hhmmss(new Date().toISOString())} * ${e.peer}: ${
        typeof e.rtt_ms === "number" ? `${e.rtt_ms} ms` : "no answer"
      } (${e.path} ${e.transport})`;
    case "left":
      return `${hhmmss(new Date().toISOString())} * ${e.peer} left${e.reason ? ` (${e.reason})` : ""}`;
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
  const color = !out.json && Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
  let onRoom = () => {};
  const room = new ChatRoom({
    emit: (e) => {
      out.app(e, describe(e, color));
      if (e.event === "joined" || e.event === "left") onRoom();
    },
  });
  return await runApp(r, out.node, room, async (run) => {
    const status = run.status;
    onRoom = () => status.setApp({ app: "chat", room: [...room.users] });
    try {
      const input = readStdinLines((line) => {
        const ping = /^\/ping(?:\s+(\S+))?\s*$/.exec(line);
        if (ping) void latency(room, ping[1], (e) => out.app(e, describe(e, color)));
        else if (line.trim() !== "") room.say(line);
      });
      input.catch(() => {});
      onRoom();
      await run.firstLink();
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
