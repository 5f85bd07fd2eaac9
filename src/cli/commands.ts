/** The command table: name, help, extra options, and what runs it. */
import type { ExtraOption, Resolved } from "./options.ts";
import { OPTIONS } from "./options.ts";
import { UsageError } from "./errors.ts";
import { didYouMean } from "./suggest.ts";
import { HOST_HELP, hostCommand } from "./commands/host.ts";
import { JOIN_HELP, joinCommand } from "./commands/join.ts";
import { KEYGEN_HELP, keygenCommand } from "./commands/keygen.ts";
import { TABLE_HELP, tableCommand } from "./commands/table.ts";
import { CHAT_HELP, chatCommand } from "./commands/chat.ts";
import { TUNNEL_EXTRAS, TUNNEL_HELP, tunnelCommand } from "./commands/tunnel.ts";
import { SEND_EXTRAS, SEND_HELP, sendCommand } from "./commands/send.ts";
import { RECEIVE_EXTRAS, RECEIVE_HELP, receiveCommand } from "./commands/receive.ts";
import { INIT_EXTRAS, INIT_HELP, initCommand } from "./commands/init.ts";
import { DOCTOR_HELP, doctorCommand } from "./commands/doctor.ts";
import { CONFIG_HELP, configCommand } from "./commands/config.ts";
import { STATUS_HELP, statusCommand } from "./commands/status.ts";
import { PEERS_HELP, peersCommand } from "./commands/peers.ts";
import { PING_EXTRAS, PING_HELP, pingCommand } from "./commands/ping.ts";

export interface Command {
  name: string;
  summary: string;
  help: string;
  extras?: readonly ExtraOption[];
  /** What follows the command name, e.g. "PATH…"; a command without it takes no arguments. */
  args?: string;
  run: (r: Resolved) => Promise<number> | number;
}

export const COMMANDS: readonly Command[] = [
  {
    name: "join",
    summary: "meet your group and hold direct links (the default)",
    help: JOIN_HELP,
    run: joinCommand,
  },
  {
    name: "host",
    summary: "answer requests from a mailbox (same as --host)",
    help: HOST_HELP,
    run: hostCommand,
  },
  { name: "table", summary: "print the host's peer table", help: TABLE_HELP, run: tableCommand },
  { name: "keygen", summary: "print a fresh network key", help: KEYGEN_HELP, run: keygenCommand },
  { name: "chat", summary: "one chat room with everyone linked", help: CHAT_HELP, run: chatCommand },
  {
    name: "send",
    summary: "send files and folders to a peer (PATH… --to ID)",
    help: SEND_HELP,
    extras: SEND_EXTRAS,
    args: "PATH…",
    run: sendCommand,
  },
  {
    name: "receive",
    summary: "take files a peer sends ([--out DIR] [--yes] [--force])",
    help: RECEIVE_HELP,
    extras: RECEIVE_EXTRAS,
    run: receiveCommand,
  },
  {
    name: "tunnel",
    summary: "carry a TCP/UDP port to a peer (--expose PORT | --local PORT)",
    help: TUNNEL_HELP,
    extras: TUNNEL_EXTRAS,
    run: tunnelCommand,
  },
  {
    name: "init",
    summary: "write your settings and network key once (asks, or takes flags)",
    help: INIT_HELP,
    extras: INIT_EXTRAS,
    run: (r) => initCommand(r),
  },
  {
    name: "doctor",
    summary: "check each step of your setup, with the fix",
    help: DOCTOR_HELP,
    run: doctorCommand,
  },
  {
    name: "config",
    summary: "config show: the settings in effect, secrets masked",
    help: CONFIG_HELP,
    args: "show | path",
    run: configCommand,
  },
  {
    name: "peers",
    summary: "the members your running node is linked to, and how",
    help: PEERS_HELP,
    run: peersCommand,
  },
  {
    name: "ping",
    summary: "round trips to a linked member, like ping(8)",
    help: PING_HELP,
    extras: PING_EXTRAS,
    args: "USER",
    run: pingCommand,
  },
  {
    name: "status",
    summary: "what the nodes running on this machine are doing",
    help: STATUS_HELP,
    run: statusCommand,
  },
  {
    name: "help",
    summary: "this help, or a command's (help COMMAND)",
    help: `mailmeet help [COMMAND] — this overview, or one command's help with an example

Examples:
  mailmeet help
  mailmeet help send`,
    args: "[COMMAND]",
    run: helpCommand,
  },
];

function helpCommand(r: Resolved): number {
  const name = r.positionals[0];
  if (name === undefined) {
    console.log(mainHelp());
    return 0;
  }
  const cmd = findCommand(name);
  if (!cmd) throw unknownCommand(name);
  console.log(cmd.help);
  return 0;
}

export function unknownCommand(name: string): UsageError {
  const names = COMMANDS.map((c) => c.name);
  return new UsageError(
    `Unknown command "${name}"${didYouMean(name, names)}; the commands are ${names.join(", ")}.`,
  );
}

/**
 * Every command takes the common options, but an option of one command (send's --to, receive's
 * --out, tunnel's --expose) or an argument given to a command that takes none is a mistake worth
 * one sentence, not something to ignore.
 */
export function checkCommandArgs(cmd: Command, r: Resolved): void {
  const own = new Set((cmd.extras ?? []).map((e) => e.name));
  for (const [name, value] of Object.entries(r.extra)) {
    if (value === undefined || own.has(name)) continue;
    const owners = COMMANDS.filter((c) => c.extras?.some((e) => e.name === name)).map((c) =>
      `\`mailmeet ${c.name}\``
    );
    throw new UsageError(
      `\`mailmeet ${cmd.name}\` does not take --${name}; it is an option of ${owners.join(" and ")}.`,
    );
  }
  if (!cmd.args && r.positionals.length > 0) {
    const [first] = r.positionals;
    const names = COMMANDS.map((c) => c.name);
    throw new UsageError(
      `\`mailmeet ${cmd.name}\` takes no arguments, but "${first}" was given${
        names.includes(first) ? ` (one command at a time: \`mailmeet ${first}\`)` : ""
      }.`,
    );
  }
}

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

const OPTION_WIDTH = 24;

/** Help lines are wrapped to fit this many columns. */
const HELP_WIDTH = 100;

/** Words of `text` in lines of at most `width` columns. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

function optionLine(name: string, help: string): string {
  const indent = " ".repeat(OPTION_WIDTH + 3);
  const body = help.split("\n").flatMap((part) => wrap(part, HELP_WIDTH - indent.length)).join(`\n${indent}`);
  return name.length > OPTION_WIDTH
    ? `  ${name}\n${indent}${body}`
    : `  ${name.padEnd(OPTION_WIDTH)} ${body}`;
}

/** The options one command or another takes, each with the commands that take it. */
function commandOptions(): string {
  const byName = new Map<string, { spec: ExtraOption; uses: string[] }>();
  for (const c of COMMANDS) {
    for (const e of c.extras ?? []) {
      const seen = byName.get(e.name) ?? { spec: e, uses: [] };
      seen.uses.push(`${c.name}: ${e.help}`);
      byName.set(e.name, seen);
    }
  }
  return [...byName.values()].map(({ spec, uses }) =>
    optionLine(
      `--${spec.name}${spec.short ? `, -${spec.short}` : ""}${spec.arg ? ` ${spec.arg}` : ""}`,
      uses.join("\n"),
    )
  ).join("\n");
}

export function mainHelp(): string {
  const cmds = COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join("\n");
  const opts = OPTIONS.map((o) => {
    const name = `--${o.name}${o.arg ? ` ${o.arg}` : ""}`;
    return optionLine(
      name,
      `${o.help}${o.default !== undefined && o.kind !== "boolean" ? ` (default ${o.default})` : ""}`,
    );
  }).join("\n");
  return `mailmeet — meet friends' computers through e-mail, then link directly

Usage: mailmeet [COMMAND] [OPTIONS]

Commands:
${cmds}

Options (each also MAILMEET_<NAME> in the environment, or a key in the config file that
\`mailmeet init\` writes — ~/.config/mailmeet/config.json, or --config FILE; a flag beats the
environment, which beats the file; \`mailmeet config show\` says where each setting came from):
${opts}

Options of one command (the others refuse them):
${commandOptions()}

Exit codes: 0 done · 1 bad usage or configuration · 2 could not reach a mail server ·
3 no peer connected before --timeout · 4 a transfer was declined or broke off (send, receive) ·
130 interrupted (Ctrl-C) — never 0 for work not done.

New here? \`mailmeet init\`, then \`mailmeet doctor\`, then \`mailmeet join\`.
Run \`mailmeet help COMMAND\` (or \`mailmeet COMMAND --help\`) for a command's help and an example.`;
}
