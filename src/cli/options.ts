/**
 * Every option, in one table: its type, help, default, and whether it is a secret. Settings are
 * resolved in one place, in one order (flag > MAILMEET_* environment > --config file > default).
 */
import { parseArgs } from "node:util";
import { parseDuration } from "./duration.ts";
import { UsageError } from "./errors.ts";
import { didYouMean } from "./suggest.ts";
import { defaultConfigPath, type Os } from "./paths.ts";

export type OptionKind = "string" | "boolean" | "list" | "int" | "duration";

export interface OptionSpec<Name extends string = string> {
  name: Name;
  kind: OptionKind;
  help: string;
  default?: string | number | boolean | string[];
  /** Masked by `config show`, never logged. */
  secret?: boolean;
  /** Only on the command line (not env or file). */
  flagOnly?: boolean;
  arg?: string;
}

/**
 * The table itself, `as const` so that its names, kinds and defaults are types: `Settings` below is
 * derived from it, and a misspelt option name or a setting read as the wrong kind fails `deno check`.
 */
const TABLE = [
  { name: "config", kind: "string", arg: "FILE", help: "read settings from this JSON file", flagOnly: true },
  { name: "address", kind: "string", arg: "ADDR", help: "your own e-mail address" },
  {
    name: "smtp",
    kind: "string",
    arg: "URL",
    help: "how to send: smtp://, smtps:// or maildir:///spool",
    secret: true,
  },
  {
    name: "inbox",
    kind: "string",
    arg: "URL",
    help: "how to read your mail: imap://, imaps://, pop3://, pop3s:// or maildir:///spool",
    secret: true,
  },
  { name: "via", kind: "list", arg: "ADDR", help: "host mailbox to ask (repeatable)" },
  {
    name: "key",
    kind: "string",
    arg: "KEY",
    help: "network key from `mailmeet keygen`, or a passphrase",
    secret: true,
  },
  { name: "key-file", kind: "string", arg: "FILE", help: "read the network key from this file" },
  {
    name: "user",
    kind: "string",
    arg: "ID",
    help: "your user id as others see it (default: your address's local part)",
  },
  { name: "listen", kind: "string", arg: "IP:PORT", help: "where to accept links", default: "0.0.0.0:0" },
  {
    name: "advertise",
    kind: "string",
    arg: "IP:PORT",
    help: "address others should dial (default: detected)",
  },
  {
    name: "timeout",
    kind: "duration",
    arg: "SECONDS",
    help: "how long to wait for a first link (0 = for ever)",
    default: "120",
  },
  {
    name: "wait",
    kind: "boolean",
    help: "wait for others for ever (same as --timeout 0; interactive chat waits by default)",
    default: false,
  },
  {
    name: "dial-timeout",
    kind: "duration",
    arg: "SECONDS",
    help: "how long one dial may take",
    default: "5",
  },
  {
    name: "dial-window",
    kind: "duration",
    arg: "SECONDS",
    help: "how long to keep trying to reach a peer a host listed (punching through NATs)",
    default: "45",
  },
  {
    name: "stun",
    kind: "list",
    arg: "HOST:PORT",
    help: "STUN server to learn your public address from (repeatable; `none` turns STUN off)",
  },
  {
    name: "no-port-mapping",
    kind: "boolean",
    help: "never ask the home router to forward ports (NAT-PMP, UPnP)",
    default: false,
  },
  {
    name: "relay",
    kind: "boolean",
    help: "relay links for members who cannot reach each other directly",
    default: false,
  },
  {
    name: "no-relay",
    kind: "boolean",
    help: "never relay for others (a host with a public address relays by default)",
    default: false,
  },
  { name: "json", kind: "boolean", help: "one JSON object per line on stdout", default: false },
  { name: "friend", kind: "list", arg: "ID", help: "dial this user first (repeatable)" },
  { name: "block", kind: "list", arg: "ID", help: "never dial this user (repeatable)" },
  {
    name: "marker",
    kind: "string",
    arg: "TEXT",
    help: "subject marker of mailmeet mail",
    default: "mailmeet rendezvous",
  },
  { name: "db", kind: "string", arg: "FILE", help: "host: the peer table file" },
  { name: "capacity", kind: "int", arg: "N", help: "host: rows kept in the table", default: 1000 },
  { name: "reply-limit", kind: "int", arg: "N", help: "host: peers in one reply at most", default: 16 },
  {
    name: "ttl",
    kind: "duration",
    arg: "DURATION",
    help: "host: forget peers after this long",
    default: "12h",
  },
  {
    name: "max-age",
    kind: "duration",
    arg: "DURATION",
    help: "host: drop requests older than this",
    default: "12h",
  },
  {
    name: "reannounce",
    kind: "duration",
    arg: "DURATION",
    help: "ask the host(s) again this often: stay in their tables, meet newcomers (0 = never)",
    default: "30m",
  },
  {
    name: "sync-interval",
    kind: "duration",
    arg: "DURATION",
    help: "host: how often to send other hosts our entries (0 = never)",
    default: "10m",
  },
  {
    name: "bootstrap",
    kind: "string",
    arg: "ADDR",
    help: "host: fill the table from this host before answering",
  },
  {
    name: "forward-to",
    kind: "list",
    arg: "ADDR",
    help: "host: only pass requests on to these worker hosts, in turn (repeatable)",
  },
  {
    name: "once",
    kind: "boolean",
    help: "host: answer what is in the mailbox now, then exit",
    default: false,
  },
  {
    name: "host",
    kind: "boolean",
    help: "run as a dedicated host (same as `mailmeet host`)",
    default: false,
  },
  { name: "no-host", kind: "boolean", help: "never answer requests that reach your inbox", default: false },
  { name: "max-links", kind: "int", arg: "N", help: "links to open by dialing at most", default: 8 },
  {
    name: "mail-budget",
    kind: "int",
    arg: "N",
    help: "mails a day this account may send at most (free accounts allow a few hundred)",
    default: 200,
  },
  {
    name: "poll",
    kind: "duration",
    arg: "SECONDS",
    help: "polling interval where the server has no push",
    default: "2",
  },
  {
    name: "idle-renew",
    kind: "duration",
    arg: "DURATION",
    help: "IMAP: renew IDLE this often; a connection that does not answer then is replaced",
    default: "5m",
  },
  { name: "tls-ca", kind: "string", arg: "FILE", help: "trust this CA certificate (PEM) for mail servers" },
  {
    name: "oauth-token-file",
    kind: "string",
    arg: "FILE",
    help: "the OAuth2 sign-in for auth=oauth2 URLs (default: oauth-token.json beside the config)",
  },
  { name: "debug", kind: "boolean", help: "show stack traces", default: false },
  { name: "quiet", kind: "boolean", help: "only errors and links (chat lines always show)", default: false },
  { name: "verbose", kind: "boolean", help: "more detail", default: false },
  { name: "help", kind: "boolean", help: "show help", flagOnly: true, default: false },
  { name: "version", kind: "boolean", help: "show the version", flagOnly: true, default: false },
] as const satisfies readonly OptionSpec[];

type Row = typeof TABLE[number];
export type OptionName = Row["name"];
/** Every option, in help order; `name` is one of the table's. */
export const OPTIONS: readonly OptionSpec<OptionName>[] = TABLE;

type NamesOf<Kind extends OptionKind> = Extract<Row, { kind: Kind }>["name"];
export type StringOption = NamesOf<"string">;
export type BooleanOption = NamesOf<"boolean">;
export type ListOption = NamesOf<"list">;
/** Repeatable options of e-mail addresses: the list options whose argument is an ADDR. */
export type AddressListOption = Extract<Row, { kind: "list"; arg: "ADDR" }>["name"];
/** int and duration (milliseconds) settings. */
export type NumberOption = NamesOf<"int" | "duration">;

type KindValue<Kind extends OptionKind> = Kind extends "boolean" ? boolean
  : Kind extends "list" ? string[]
  : Kind extends "int" | "duration" ? number
  : string;

/**
 * The resolved settings, one property per option. An option with a default is always set (a
 * default is converted like any other value); one without may be undefined.
 */
export type Settings = {
  [R in Row as R["name"]]: R extends { default: unknown } ? KindValue<R["kind"]>
    : KindValue<R["kind"]> | undefined;
};

export type Source = "flag" | "env" | "file" | "default";
export type Value = string | number | boolean | string[] | undefined;

/** What an extra option resolves to: its string(s), or true for a switch; undefined when not given. */
export type ExtraValue = string | boolean | string[] | undefined;

/**
 * The resolved command line. `Extra` names the extra options a command reads (see ExtraNames), so
 * that `r.extra.tp` in a command that declared `to` fails `deno check`.
 */
export interface Resolved<Extra extends string = string> {
  command: string;
  /** False when the command was implied (bare `mailmeet`, or `--host`). */
  explicitCommand: boolean;
  positionals: string[];
  values: Settings;
  sources: Record<OptionName, Source>;
  /** Options not in OPTIONS that a command declared (e.g. send's --to). */
  extra: { [Name in Extra]?: ExtraValue };
  /**
   * The config file in use: named by --config or MAILMEET_CONFIG, or the default one of the platform
   * when it exists. `exists` is false only for `init`, which may name a file it is about to create.
   */
  configFile?: ConfigFileInfo;
}

export interface ConfigFileInfo {
  path: string;
  origin: "flag" | "env" | "default";
  exists: boolean;
}

/** An option only some commands take (send's --to, receive's --out); others refuse it. */
export interface ExtraOption {
  name: string;
  kind: "string" | "boolean" | "list";
  short?: string;
  arg?: string;
  /** One line for `mailmeet --help` and the command's own help. */
  help: string;
}

/** The names in a command's table of extras (declared `as const satisfies readonly ExtraOption[]`). */
export type ExtraNames<Extras extends readonly ExtraOption[]> = Extras[number]["name"];

export function envName(option: string): string {
  return `MAILMEET_${option.toUpperCase().replaceAll("-", "_")}`;
}

function convert(spec: OptionSpec, raw: unknown, where: string): Value {
  if (raw === undefined) return undefined;
  switch (spec.kind) {
    case "boolean":
      if (typeof raw === "boolean") return raw;
      if (/^(1|true|yes|on)$/i.test(String(raw))) return true;
      if (/^(0|false|no|off|)$/i.test(String(raw))) return false;
      throw new UsageError(`${where} must be true or false, not "${raw}".`);
    case "list":
      if (Array.isArray(raw)) return raw.map(String);
      return String(raw).split(",").map((s) => s.trim()).filter(Boolean);
    case "int": {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) {
        throw new UsageError(`${where} must be a whole number of at least 1, not "${raw}".`);
      }
      return n;
    }
    case "duration":
      return parseDuration(String(raw), spec.name);
    default:
      return String(raw);
  }
}

export async function resolveOptions(
  args: string[],
  env: Record<string, string | undefined>,
  extras: readonly ExtraOption[] = [],
  os: Os = Deno.build.os,
): Promise<Resolved> {
  const parseConfig: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
  for (const o of OPTIONS) {
    parseConfig[o.name] = { type: o.kind === "boolean" ? "boolean" : "string", multiple: o.kind === "list" };
  }
  for (const o of extras) {
    parseConfig[o.name] = {
      type: o.kind === "boolean" ? "boolean" : "string",
      multiple: o.kind === "list",
      // node's parseArgs rejects `short: undefined`: only name it when there is one.
      ...(o.short ? { short: o.short } : {}),
    };
  }
  parseConfig.help.short = "h";
  let parsed;
  try {
    parsed = parseArgs({ args, options: parseConfig, allowPositionals: true, strict: true });
  } catch (err) {
    throw argsError(err as Error, args, extras);
  }
  const flags = parsed.values as Record<string, unknown>;
  const positionals = [...parsed.positionals];
  const explicitCommand = positionals.length > 0;
  let command = positionals.shift() ?? "join";
  if (flags.host === true && command === "join") command = "host";

  let file: Record<string, unknown> = {};
  const configFile = await findConfigFile(flags.config as string | undefined, env, os);
  const configPath = configFile?.path;
  if (configFile) {
    // `init` may name a file it is about to write; every other command needs it to be there.
    const loaded = await readConfigFile(configFile.path, command === "init");
    if (loaded) file = loaded;
    else configFile.exists = false;
  }

  // Filled below for every row of the table, each by convert() from its kind: a Settings once done.
  const values: Record<string, Value> = {};
  const sources: Partial<Record<OptionName, Source>> = {};
  for (const spec of OPTIONS) {
    let raw: unknown;
    let source: Source = "default";
    if (flags[spec.name] !== undefined) {
      raw = flags[spec.name];
      source = "flag";
    } else if (!spec.flagOnly && env[envName(spec.name)] !== undefined) {
      raw = env[envName(spec.name)];
      source = "env";
    } else if (!spec.flagOnly && file[spec.name] !== undefined) {
      raw = file[spec.name];
      source = "file";
    } else {
      raw = spec.default;
    }
    const where = source === "flag"
      ? `--${spec.name}`
      : source === "env"
      ? envName(spec.name)
      : source === "file"
      ? `"${spec.name}" in ${configPath}`
      : `--${spec.name}`;
    values[spec.name] = convert(spec, raw, where);
    sources[spec.name] = source;
  }
  values.config = configPath;
  if (configFile) sources.config = configFile.origin === "default" ? "default" : configFile.origin;
  const extra: Resolved["extra"] = {};
  for (const o of extras) extra[o.name] = flags[o.name] as ExtraValue;
  return {
    command,
    explicitCommand,
    positionals,
    values: values as Settings,
    sources: sources as Record<OptionName, Source>,
    extra,
    configFile,
  };
}

/** --config, else MAILMEET_CONFIG, else the platform's default file when it exists. */
async function findConfigFile(
  flag: string | undefined,
  env: Record<string, string | undefined>,
  os: Os,
): Promise<ConfigFileInfo | undefined> {
  if (flag) return { path: flag, origin: "flag", exists: true };
  if (env.MAILMEET_CONFIG) return { path: env.MAILMEET_CONFIG, origin: "env", exists: true };
  const path = defaultConfigPath(env, os);
  if (!path) return undefined;
  try {
    await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.PermissionDenied) return undefined;
    throw new UsageError(`Cannot look for the config file ${path}: ${(err as Error).message}.`);
  }
  return { path, origin: "default", exists: true };
}

/** The file's settings; undefined when it does not exist and `missingOk`. */
export async function readConfigFile(
  path: string,
  missingOk = false,
): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      if (missingOk) return undefined;
      throw new UsageError(
        `Cannot read the config file ${path}: it does not exist. Create it with \`mailmeet init --config ${path}\`, or name another one.`,
      );
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(
        `Cannot read the config file ${path}: permission denied. Check its owner, or run Deno with --allow-read.`,
      );
    }
    throw new UsageError(`Cannot read the config file ${path}: ${(err as Error).message}.`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`The config file ${path} is not valid JSON: ${(err as Error).message}.`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new UsageError(`The config file ${path} must hold one JSON object of option names and values.`);
  }
  const known: string[] = OPTIONS.filter((o) => !o.flagOnly).map((o) => o.name);
  for (const k of Object.keys(data)) {
    if (!known.includes(k)) {
      throw new UsageError(
        `The config file ${path} has an unknown setting "${k}"${didYouMean(k, known, (w) => `"${w}"`)}.`,
      );
    }
  }
  return data as Record<string, unknown>;
}

/**
 * node:util's parseArgs explains itself in several lines of its own words; this turns each of its
 * complaints into one sentence that says what to type instead.
 */
function argsError(err: Error, args: readonly string[], extras: readonly ExtraOption[]): UsageError {
  const text = err.message;
  const names = [...OPTIONS.map((o) => o.name), ...extras.map((o) => o.name)];
  const help = "run `mailmeet --help` for the options";
  const unknown = /Unknown option '(-{1,2})([^']+)'/.exec(text);
  if (unknown) {
    const [, dashes, name] = unknown;
    const hint = dashes === "--" ? didYouMean(name, names, (w) => `--${w}`) : "";
    return new UsageError(`Unknown option ${dashes}${name}${hint}; ${help}.`);
  }
  const option = /Option '(?:-\w, )?--([\w-]+)/.exec(text)?.[1];
  if (option && /argument is ambiguous/.test(text)) {
    // "--timeout -5": the value starts with a dash, so parseArgs will not take it as the value.
    const at = args.findIndex((a) => a === `--${option}`);
    const value = at >= 0 ? args[at + 1] : undefined;
    const spec = OPTIONS.find((o) => o.name === option);
    if (value !== undefined && /^--?[A-Za-z]/.test(value)) {
      return new UsageError(`--${option} needs a value, but ${value} follows it.`);
    }
    if (value !== undefined && spec && (spec.kind === "duration" || spec.kind === "int")) {
      try {
        convert(spec, value, `--${option}`);
      } catch (e) {
        if (e instanceof UsageError) return e;
      }
    }
    return new UsageError(
      `--${option} ${value ?? ""}: a value that starts with "-" is written --${option}=${value ?? "VALUE"}.`,
    );
  }
  if (option && /argument missing/.test(text)) {
    const spec = OPTIONS.find((o) => o.name === option) ?? extras.find((o) => o.name === option);
    return new UsageError(`--${option} needs a value${spec?.arg ? ` (--${option} ${spec.arg})` : ""}.`);
  }
  if (option && /does not take an argument/.test(text)) {
    return new UsageError(`--${option} is a switch and takes no value; write just --${option}.`);
  }
  return new UsageError(`${text.split("\n")[0].replace(/\.$/, "")}; ${help}.`);
}
