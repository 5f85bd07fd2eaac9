/** The command table: name, help, extra options, and what runs it. */
import type { ExtraOption, Resolved } from "./options.ts";
import { OPTIONS } from "./options.ts";
import { HOST_HELP, hostCommand } from "./commands/host.ts";
import { JOIN_HELP, joinCommand } from "./commands/join.ts";
import { KEYGEN_HELP, keygenCommand } from "./commands/keygen.ts";
import { TABLE_HELP, tableCommand } from "./commands/table.ts";
import { CHAT_HELP, chatCommand } from "./commands/chat.ts";
import { TUNNEL_EXTRAS, TUNNEL_HELP, tunnelCommand } from "./commands/tunnel.ts";
import { SEND_EXTRAS, SEND_HELP, sendCommand } from "./commands/send.ts";
import { RECEIVE_EXTRAS, RECEIVE_HELP, receiveCommand } from "./commands/receive.ts";
import { INIT_HELP, initCommand } from "./commands/init.ts";
import { DOCTOR_HELP, doctorCommand } from "./commands/doctor.ts";
import { CONFIG_HELP, configCommand } from "./commands/config.ts";
import { STATUS_HELP, statusCommand } from "./commands/status.ts";
import { PEERS_HELP, peersCommand } from "./commands/peers.ts";

export interface Command {
  name: string;
  summary: string;
  help: string;
  extras?: ExtraOption[];
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
    extras: [{ name: "force", kind: "boolean" }, { name: "password-stdin", kind: "boolean" }],
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
    run: configCommand,
  },
  {
    name: "peers",
    summary: "the members your running node is linked to, and how",
    help: PEERS_HELP,
    run: peersCommand,
  },
  {
    name: "status",
    summary: "what the nodes running on this machine are doing",
    help: STATUS_HELP,
    run: statusCommand,
  },
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

export function mainHelp(): string {
  const cmds = COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join("\n");
  const opts = OPTIONS.map((o) => {
    const name = `--${o.name}${o.arg ? ` ${o.arg}` : ""}`;
    return `  ${name.padEnd(24)} ${o.help}${
      o.default !== undefined && o.kind !== "boolean" ? ` (default ${o.default})` : ""
    }`;
  }).join("\n");
  return `mailmeet — meet friends' computers through e-mail, then link directly

Usage: mailmeet [COMMAND] [OPTIONS]

Commands:
${cmds}

Options (each also MAILMEET_<NAME> in the environment, or a key in the config file that
\`mailmeet init\` writes — ~/.config/mailmeet/config.json, or --config FILE; a flag beats the
environment, which beats the file; \`mailmeet config show\` says where each setting came from):
${opts}

Exit codes: 0 done · 1 bad usage or configuration · 2 could not reach a mail server ·
3 no peer connected before --timeout.

New here? \`mailmeet init\`, then \`mailmeet doctor\`, then \`mailmeet join\`.
Run \`mailmeet COMMAND --help\` for a command's help and an example.`;
}
