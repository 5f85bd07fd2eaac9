/**
 * `mailmeet init`: from "I have an e-mail account" to a config file every other command reads. On a
 * terminal it asks (suggesting the servers of well-known providers, never echoing the password);
 * with --address, or when not on a terminal, it takes flags and asks nothing. The network key is
 * created, or imported, into a key file beside the config; both files are owner-only.
 */
import { join, resolve } from "node:path";
import { parseAccount, redact } from "../../mail/account.ts";
import { isMailAddress } from "../../mail/address.ts";
import { MailError } from "../../mail/errors.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { generateKeyText, type NetworkKey, parseNetworkKey } from "../../protocol/keys.ts";
import { isValidUserId } from "../../protocol/messages.ts";
import { configText, formatDuration, writeSecretFile } from "../config_file.ts";
import { describeFsError } from "../../apps/file_send.ts";
import { flag, str } from "../context.ts";
import { UsageError } from "../errors.ts";
import {
  type ExtraNames,
  type ExtraOption,
  type OptionName,
  OPTIONS,
  readConfigFile,
  type Resolved,
} from "../options.ts";
import { paint } from "../output.ts";
import { defaultConfigPath, keyFileFor } from "../paths.ts";
import { Prompter, type PromptIo, terminalIo } from "../prompt.ts";
import { suggestServers, withCredentials } from "../providers.ts";
import { tokenFileFor } from "../../oauth/token_store.ts";
import {
  dropSignIn,
  OAUTH_EXTRAS,
  oauthClient,
  oauthRequested,
  oauthServers,
  previousSignIn,
  saveSignIn,
  signIn,
  type SignInDeps,
  usesOAuth,
} from "../oauth_signin.ts";

export const INIT_HELP = `mailmeet init — write your settings once: address, mail servers, hosts, network key

On a terminal, init asks for each setting (suggesting the servers of well-known providers such as
Gmail, Outlook.com, Yahoo, iCloud, GMX) and reads the password without showing it. With --address,
or when not on a terminal, it asks nothing and takes the options given. It creates a network key,
or imports yours with --key-file FILE (or --key), and writes the config file, readable by you only,
to ~/.config/mailmeet/config.json (Linux; ~/Library/Application Support/mailmeet on macOS,
%APPDATA%\\mailmeet on Windows; $XDG_CONFIG_HOME/mailmeet when set) or to --config FILE. Every
command reads that file; flags and MAILMEET_* variables still win over it.

  --force            replace an existing config file (its settings are kept unless given again)
  --password-stdin   read the mail password from standard input and put it into the servers'
                     URLs (with the suggested servers when --smtp/--inbox are not given)
  --oauth PROVIDER   sign in with OAuth2 instead of a password (microsoft for Outlook.com and
                     Hotmail, google): init shows an address and a code to type there, then keeps
                     the sign-in in oauth-token.json beside the config (readable by you only) and
                     renews it as needed. Needs --oauth-client-id ID, the app your group registered;
                     --oauth-client-secret, --oauth-device-url, --oauth-token-url and --oauth-scope
                     replace the provider's defaults. --force signs in afresh and revokes the old
                     sign-in (or removes it when the new settings use passwords)

Examples:
  mailmeet init
  mailmeet init --address bob@gmail.com --via lan-host@gmail.com --key-file group.key --password-stdin < pw.txt
  mailmeet init --address bob@outlook.com --oauth microsoft --oauth-client-id 00000000-… --key-file group.key
  mailmeet init --address bob@isp-b.test --smtp 'smtps://bob%40isp-b.test:PASS@smtp.isp-b.test' \\
    --inbox 'imaps://bob%40isp-b.test:PASS@imap.isp-b.test/INBOX' --via lan-host@game.test`;

/** init's own options, then the OAuth2 sign-in's. */
export const INIT_EXTRAS = [
  {
    name: "force",
    kind: "boolean",
    help: "replace an existing config file (keeping what is not given again)",
  },
  { name: "password-stdin", kind: "boolean", help: "read the mail password from standard input" },
  ...OAUTH_EXTRAS,
] as const satisfies readonly ExtraOption[];
type InitResolved = Resolved<ExtraNames<typeof INIT_EXTRAS>>;

/** Options never written to the config file: per-run switches and what init itself handles. */
const NOT_SAVED = new Set<OptionName>([
  "config",
  "help",
  "version",
  "json",
  "quiet",
  "verbose",
  "debug",
  "host",
  "once",
  "key",
]);
/** Options holding a path: saved absolute, since the config is read from anywhere. */
const PATHS = new Set<OptionName>(["key-file", "tls-ca", "db", "oauth-token-file"]);
const MAX_TRIES = 5;

export interface InitDeps {
  /** Questions and answers; the terminal by default. */
  io?: PromptIo;
  /** Whether to ask (default: stdin is a terminal, no --address flag, no --json). */
  interactive?: boolean;
  /** Standard input as text, for --password-stdin. */
  readStdin?: () => Promise<string>;
  env?: Record<string, string | undefined>;
  print?: (line: string) => void;
  /** HTTP, clock and waits of the OAuth2 device flow (tests). */
  oauth?: SignInDeps;
}

type Settings = Record<string, unknown>;

export async function initCommand(r: InitResolved, deps: InitDeps = {}): Promise<number> {
  const env = deps.env ?? Deno.env.toObject();
  const print = deps.print ?? ((line: string) => console.log(line));
  const json = flag(r, "json");
  const quiet = flag(r, "quiet");
  const say = (line: string) => {
    if (!json && !quiet) print(line);
  };

  const target = targetPath(r, env);
  const exists = await fileExists(target);
  const interactive = deps.interactive ??
    (Deno.stdin.isTerminal() && r.sources.address !== "flag" && !json && !r.extra["password-stdin"]);
  const prompter = interactive ? new Prompter(deps.io ?? terminalIo()) : undefined;

  if (exists && !r.extra.force) {
    if (prompter && !await prompter.confirm(`A config file already exists at ${target}. Change it?`, false)) {
      say(`Left ${target} as it was.`);
      return 0;
    }
    if (!prompter) {
      throw new UsageError(
        `A config file already exists at ${target}; pass --force to change it (its settings are kept unless given again), or --config FILE for another.`,
      );
    }
  }
  // What the file holds now stays unless replaced: re-running init changes only what is given.
  const before: Settings = exists ? (await readConfigFile(target, true) ?? {}) : {};
  const settings: Settings = { ...before };
  for (const spec of OPTIONS) {
    if (NOT_SAVED.has(spec.name) || r.sources[spec.name] !== "flag") continue;
    settings[spec.name] = saved(spec.name, spec.kind, r.values[spec.name]);
  }

  // Server URLs carry the old account's login: a new --address without new URLs starts them afresh.
  const oldAddress = typeof before.address === "string" ? before.address.toLowerCase() : undefined;
  const newAddress = typeof settings.address === "string" ? settings.address.toLowerCase() : undefined;
  if (oldAddress && newAddress && oldAddress !== newAddress) {
    for (const name of ["smtp", "inbox"] as const) {
      if (r.sources[name] !== "flag" && settings[name] !== undefined) {
        delete settings[name];
        say(`  --${name} of ${oldAddress} dropped: it logs in as the old address.`);
      }
    }
  }

  let password: string | undefined;
  if (r.extra["password-stdin"]) {
    const text = await (deps.readStdin ?? readAllStdin)();
    password = text.split(/\r?\n/)[0];
    if (!password) throw new UsageError("--password-stdin read no password from standard input.");
  }

  const wantOAuth = oauthRequested(r);
  if (wantOAuth && password !== undefined) {
    throw new UsageError("--oauth signs in without a password: leave out --password-stdin.");
  }
  if (prompter) {
    // Notes go where the questions go (stderr), between them.
    await askMail(prompter, settings, (line) => prompter.io.write(`${line}\n`), !wantOAuth);
  } else if (wantOAuth) {
    checkAddress(settings.address);
  } else {
    completeMail(settings, password, say);
  }
  if (wantOAuth) {
    const given = { smtp: r.sources.smtp === "flag", inbox: r.sources.inbox === "flag" };
    oauthServers(settings, given, String(settings.address).toLowerCase());
  }
  checkMail(settings);

  const key = await settleKey(r, settings, target, prompter, say, env);
  const oauth = await settleSignIn(r, settings, target, deps, {
    show: (line) => prompter ? prompter.io.write(`${line}\n`) : print(line),
    say,
    ...(json ? { event: (e: Record<string, unknown>) => print(JSON.stringify(e)) } : {}),
  });

  await writeSecretFile(target, configText(order(settings)), "config file");
  if (json) {
    print(JSON.stringify({
      event: "init",
      config: target,
      address: settings.address,
      key_file: settings["key-file"],
      key: key.how,
      fingerprint: key.fingerprint,
      ...(oauth ? { oauth: oauth.how, oauth_token_file: oauth.path } : {}),
    }));
    return 0;
  }
  if (oauth?.how === "signed_in") {
    say(
      `${
        paint("32", "✓")
      } Signed in with OAuth2 (${oauth.provider}); the sign-in is kept in ${oauth.path} (readable by you only).`,
    );
  } else if (oauth?.how === "removed") {
    say(
      `${
        paint("32", "✓")
      } Removed the OAuth2 sign-in ${oauth.path}: the mail servers now log in with a password.`,
    );
  }
  say(`${paint("32", "✓")} Wrote ${target} (readable by you only).`);
  if (key.how === "created") {
    say(
      `${paint("32", "✓")} Created a network key in ${
        settings["key-file"]
      } (fingerprint ${key.fingerprint}).`,
    );
    say(
      "  Give that file to everyone in your group over a channel you trust (in person, a messenger), not by",
    );
    say("  e-mail; they run `mailmeet init --key-file FILE`.");
  } else {
    say(
      `${
        paint("32", "✓")
      } Network key ${key.how} (fingerprint ${key.fingerprint}; the same for everyone in the group).`,
    );
  }
  if (!settings.via) {
    say(
      "  No host mailbox (--via) yet: this machine can host (`mailmeet --host`); to join, add --via later.",
    );
  }
  say("Next: `mailmeet doctor` checks every step; then `mailmeet join`.");
  return 0;
}

function targetPath(r: Resolved, env: Record<string, string | undefined>): string {
  if (r.configFile && r.configFile.origin !== "default") return resolve(r.configFile.path);
  const path = defaultConfigPath(env);
  if (!path) {
    throw new UsageError(
      "Cannot tell where your config folder is (neither HOME nor XDG_CONFIG_HOME is set); pass --config FILE.",
    );
  }
  return path;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new UsageError(`Cannot look at ${path}: ${(err as Error).message}.`);
  }
}

async function readAllStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

/** A resolved value in the form the config file takes (durations as "90s", paths absolute). */
function saved(name: OptionName, kind: string, value: unknown): unknown {
  if (kind === "duration" && typeof value === "number") return formatDuration(value);
  if (PATHS.has(name) && typeof value === "string") return resolve(value);
  return value;
}

/** Settings in the order of the options table, so the file reads like `mailmeet --help`. */
function order(settings: Settings): Settings {
  const out: Settings = {};
  for (const spec of OPTIONS) if (settings[spec.name] !== undefined) out[spec.name] = settings[spec.name];
  return out;
}

/** Non-interactive: fill --smtp/--inbox from the suggested servers when a password was given. */
function completeMail(settings: Settings, password: string | undefined, say: (l: string) => void): void {
  const address = checkAddress(settings.address);
  const s = suggestServers(address);
  for (
    const [name, suggested, login] of [
      ["smtp", s.smtp, s.provider?.login ? address : s.login],
      ["inbox", s.inbox, s.login],
    ] as const
  ) {
    const given = settings[name];
    if (typeof given === "string") {
      // --password-stdin always wins: the login in the URL stays if it has one, the password is the new one.
      if (password !== undefined) settings[name] = withPassword(given, login, password);
      continue;
    }
    if (password === undefined) {
      throw new UsageError(
        `Say how to ${name === "smtp" ? "send" : "read"} mail with --${name} URL (for ${
          address.split("@")[1]
        }: ${suggested}, with your login and password in it), or add --password-stdin to use ${suggested}.`,
      );
    }
    settings[name] = withCredentials(suggested, login, password);
    say(`  --${name}: ${suggested}${s.provider ? ` (${s.provider.name})` : " (a guess from the domain)"}`);
  }
  if (s.note) say(`  ${s.note}`);
}

function checkAddress(address: unknown): string {
  if (typeof address !== "string" || !isMailAddress(address)) {
    throw new UsageError(
      address
        ? `--address ${address} is not an e-mail address.`
        : "Say whose mailbox this is with --address you@example.org (or run `mailmeet init` on a terminal to be asked).",
    );
  }
  return address;
}

interface SignInOutcome {
  how: "signed_in" | "removed";
  path: string;
  provider?: string;
}

/**
 * The OAuth2 sign-in beside the config: a new one (device flow) whenever the settings log in with
 * OAuth2 — the one it replaces is revoked — and none when they do not (an old one is removed).
 */
async function settleSignIn(
  r: Resolved,
  settings: Settings,
  target: string,
  deps: InitDeps,
  io: Parameters<typeof signIn>[2],
): Promise<SignInOutcome | undefined> {
  const named = settings["oauth-token-file"];
  const path = typeof named === "string" ? named : tokenFileFor(target);
  const previous = await previousSignIn(path);
  if (!usesOAuth(settings.smtp, settings.inbox)) {
    if (await fileExists(path)) {
      await dropSignIn(path, deps.oauth);
      return { how: "removed", path };
    }
    return undefined;
  }
  const address = String(settings.address).toLowerCase();
  if (!oauthRequested(r) && !previous) {
    throw new UsageError(
      "The mail URLs log in with OAuth2 (auth=oauth2) but there is no sign-in: add --oauth microsoft|google.",
    );
  }
  const client = oauthClient(r, address, previous);
  const fresh = await signIn(client, address, io, deps.oauth);
  // The new sign-in replaces the old one: revoke that where the provider allows it (RFC 7009).
  if (previous) await dropSignIn(path, deps.oauth);
  await saveSignIn(path, fresh);
  return { how: "signed_in", path, provider: client.provider };
}

function checkMail(settings: Settings): void {
  for (const name of ["smtp", "inbox"] as const) {
    const url = settings[name];
    if (typeof url !== "string") continue;
    try {
      parseAccount(url);
    } catch (err) {
      if (err instanceof MailError) throw new UsageError(`Check --${name}: ${err.message}`);
      throw err;
    }
  }
  const via = settings.via;
  if (Array.isArray(via)) {
    for (const v of via) {
      if (!isMailAddress(String(v))) throw new UsageError(`--via ${v} is not an e-mail address.`);
    }
  }
  if (settings.user !== undefined && !isValidUserId(settings.user)) {
    throw new UsageError(`--user "${settings.user}" is not a valid user id (1–64 printable characters).`);
  }
}

/** `url` logging in with `password`: its own login if it names one, else `login`. */
export function withPassword(url: string, login: string, password: string): string {
  const u = new URL(url);
  if (u.protocol === "maildir:") return url;
  if (!u.username) u.username = encodeURIComponent(login);
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** "~" and "~/…" at a prompt mean the home folder, as a shell would expand them. */
export function expandHome(path: string, env: Record<string, string | undefined>): string {
  const home = env.HOME ?? env.USERPROFILE;
  if (!home) return path;
  if (path === "~") return home;
  if (path.startsWith("~/") || path.startsWith("~\\")) return join(home, path.slice(2));
  return path;
}

/** "smtp.example.org:465" or a URL → a server URL; bare names get the usual scheme for their port. */
export function serverUrl(answer: string, kind: "smtp" | "inbox"): string {
  const a = answer.trim();
  if (a.includes("://")) return a;
  const m = /^([^\s:/]+)(?::(\d+))?$/.exec(a);
  if (!m) throw new UsageError(`"${a}" is neither a URL nor host:port.`);
  const port = m[2] ? Number(m[2]) : undefined;
  if (kind === "smtp") return port === 465 ? `smtps://${m[1]}:465` : `smtp://${m[1]}:${port ?? 587}`;
  switch (port) {
    case 143:
      return `imap://${m[1]}:143/INBOX`;
    case 110:
      return `pop3://${m[1]}:110`;
    case 995:
      return `pop3s://${m[1]}:995`;
    case undefined:
    case 993:
      return `imaps://${m[1]}:993/INBOX`;
    default:
      return `imaps://${m[1]}:${port}/INBOX`;
  }
}

async function askUntil<T>(p: Prompter, ask: () => Promise<T>): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await ask();
    } catch (err) {
      // A closed input (or Ctrl-C, an InterruptedError) cannot be answered again.
      if (!(err instanceof UsageError) || i >= MAX_TRIES || err.code === "input_ended") {
        throw err;
      }
      p.io.write(`${err.message}\n`);
    }
  }
}

async function askMail(
  p: Prompter,
  settings: Settings,
  say: (l: string) => void,
  askServers = true,
): Promise<void> {
  const address = await askUntil(p, async () => {
    const a = await p.ask("Your e-mail address", settings.address as string | undefined);
    if (!isMailAddress(a)) throw new UsageError(`"${a}" is not an e-mail address.`);
    return a.toLowerCase();
  });
  settings.address = address;
  const keep = !askServers || typeof settings.smtp === "string" && typeof settings.inbox === "string" &&
      await p.confirm(
        `Keep the mail servers of the current config (${redact(String(settings.smtp))}, ${
          redact(String(settings.inbox))
        })?`,
        true,
      );
  if (!keep) {
    const s = suggestServers(address);
    if (s.provider) {
      say(`${s.provider.name}: the usual servers are filled in; press Enter to take them.`);
      if (s.note) say(s.note);
    } else {
      say(
        `Unknown provider: the servers below are guesses. Your provider's help page for "IMAP settings" has the real ones.`,
      );
    }
    const smtp = await askUntil(p, async () => {
      const u = serverUrl(
        await p.ask("Server for sending (SMTP; smtps://host:465 or smtp://host:587)", s.smtp),
        "smtp",
      );
      parseChecked(u, "smtp");
      return u;
    });
    const inbox = await askUntil(p, async () => {
      const u = serverUrl(
        await p.ask("Server for reading (imaps://host:993, imap://, pop3s://host:995, pop3://)", s.inbox),
        "inbox",
      );
      parseChecked(u, "inbox");
      return u;
    });
    const needsLogin = [smtp, inbox].some((u) => !u.startsWith("maildir:") && !new URL(u).username);
    if (needsLogin) {
      const login = await p.ask("Login name", s.login);
      let password = "";
      for (let i = 0; i < 3 && !password; i++) {
        password = await p.secret(s.provider ? "Password (an app password for this provider)" : "Password");
        if (!password) p.io.write("The password is empty; type it again.\n");
      }
      if (!password) {
        throw new UsageError("No password was given; run `mailmeet init` again when you have it.");
      }
      settings.smtp = withCredentials(smtp, s.provider?.login ? address : login, password);
      settings.inbox = withCredentials(inbox, login, password);
    } else {
      settings.smtp = smtp;
      settings.inbox = inbox;
    }
  }
  const via = await askUntil(p, async () => {
    const a = await p.ask(
      "Host mailbox(es) to ask, comma-separated (leave empty if this machine only hosts)",
      Array.isArray(settings.via) ? settings.via.join(", ") : undefined,
    );
    const list = a.split(",").map((v) => v.trim().toLowerCase()).filter(Boolean);
    for (const v of list) if (!isMailAddress(v)) throw new UsageError(`"${v}" is not an e-mail address.`);
    return list;
  });
  if (via.length) settings.via = via;
  else delete settings.via;
  const user = await askUntil(p, async () => {
    const u = await p.ask(
      "Your name as the others see it (user id)",
      (settings.user as string) ?? address.split("@")[0],
    );
    if (!isValidUserId(u)) throw new UsageError(`"${u}" is not a valid user id (1–64 printable characters).`);
    return u;
  });
  if (user === address.split("@")[0]) delete settings.user;
  else settings.user = user;
}

function parseChecked(url: string, name: "smtp" | "inbox"): void {
  try {
    const a = parseAccount(url);
    if (name === "smtp" && !["smtp", "smtps", "maildir"].includes(a.scheme)) {
      throw new UsageError(`For sending, use smtps:// or smtp:// (not ${a.scheme}://).`);
    }
    if (name === "inbox" && ["smtp", "smtps"].includes(a.scheme)) {
      throw new UsageError(`For reading, use imaps://, imap://, pop3s:// or pop3:// (not ${a.scheme}://).`);
    }
  } catch (err) {
    if (err instanceof MailError) throw new UsageError(err.message);
    throw err;
  }
}

interface KeyOutcome {
  how: "created" | "imported" | "kept";
  fingerprint: string;
}

async function parseKeyText(text: string, where: string): Promise<NetworkKey> {
  try {
    return await parseNetworkKey(text);
  } catch (err) {
    if (err instanceof ProtocolError) throw new UsageError(`${where}: ${err.message}`);
    throw err;
  }
}

async function readKeyFile(path: string): Promise<NetworkKey> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `The network key file ${path} does not exist; name the key you were given with --key-file FILE (or --key).`,
      );
    }
    throw new UsageError(`Cannot read the network key file ${path}: ${describeFsError(err)}.`);
  }
  return await parseKeyText(text, `The key file ${path}`);
}

/**
 * --key TEXT or --key-file FILE: saved into the key file beside the config (a copy); neither:
 * the config's key is kept, or a key file already beside it is reused, or a new key is created.
 */
async function settleKey(
  r: Resolved,
  settings: Settings,
  target: string,
  prompter: Prompter | undefined,
  say: (l: string) => void,
  env: Record<string, string | undefined>,
): Promise<KeyOutcome> {
  const ownFile = keyFileFor(target);
  const saveText = async (text: string): Promise<KeyOutcome> => {
    const key = await parseKeyText(text, "The network key");
    await writeSecretFile(ownFile, text.trim() + "\n", "network key file");
    settings["key-file"] = ownFile;
    delete settings.key;
    return { how: "imported", fingerprint: key.fingerprint };
  };
  /** Imports a key file: a copy goes beside the config, so moving or deleting the original is harmless. */
  const importFile = async (path: string): Promise<KeyOutcome> => {
    const key = await readKeyFile(path);
    if (resolve(path) !== ownFile) {
      const text = (await Deno.readTextFile(path)).trim();
      await writeSecretFile(ownFile, text + "\n", "network key file");
      say(`  Copied the network key from ${path} to ${ownFile}.`);
    }
    settings["key-file"] = ownFile;
    delete settings.key;
    return { how: "imported", fingerprint: key.fingerprint };
  };
  if (r.sources.key === "flag") return await saveText(str(r, "key")!);
  if (r.sources["key-file"] === "flag") return await importFile(settings["key-file"] as string);
  const current = typeof settings.key === "string"
    ? await parseKeyText(settings.key, "The key in the config file")
    : typeof settings["key-file"] === "string"
    ? await readKeyFile(settings["key-file"])
    : undefined;
  if (prompter) {
    if (
      current &&
      await prompter.confirm(`Keep the current network key (fingerprint ${current.fingerprint})?`, true)
    ) {
      return { how: "kept", fingerprint: current.fingerprint };
    }
    if (await prompter.confirm("Did your group already give you a network key?", false)) {
      return await askUntil(prompter, async () => {
        const path = await prompter.ask(
          "Path to the key file (or press Enter to type the key or passphrase)",
          "",
        );
        if (path) return await importFile(resolve(expandHome(path, env)));
        return await saveText(await prompter.secret("Network key or passphrase"));
      });
    }
  } else if (current) {
    return { how: "kept", fingerprint: current.fingerprint };
  }
  if (await fileExists(ownFile)) {
    // Never overwrite a key: the group may already use it.
    const key = await readKeyFile(ownFile);
    settings["key-file"] = ownFile;
    delete settings.key;
    say(`  Using the network key already in ${ownFile}.`);
    return { how: "kept", fingerprint: key.fingerprint };
  }
  const text = generateKeyText();
  const key = await parseNetworkKey(text);
  await writeSecretFile(ownFile, text + "\n", "network key file");
  settings["key-file"] = ownFile;
  delete settings.key;
  return { how: "created", fingerprint: key.fingerprint };
}
