/** Turns resolved options into what the roles need: key, mail URLs, addresses, output. */
import { join } from "node:path";
import { parseAccount } from "../mail/account.ts";
import { isMailAddress } from "../mail/address.ts";
import { MailError } from "../mail/errors.ts";
import type { AccessTokenSource } from "../mail/access_token.ts";
import { OAuthError } from "../oauth/errors.ts";
import { StoredTokenSource } from "../oauth/token_source.ts";
import { tokenFileFor } from "../oauth/token_store.ts";
import { type NetworkKey, parseNetworkKey } from "../protocol/keys.ts";
import { isValidHost, isValidUserId } from "../protocol/messages.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { EventSink } from "../roles/events.ts";
import { UsageError } from "./errors.ts";
import type {
  AddressListOption,
  BooleanOption,
  ListOption,
  NumberOption,
  Resolved,
  Settings,
  StringOption,
} from "./options.ts";
import { eventSink } from "./output.ts";
import { dataDirFor } from "./paths.ts";

/**
 * A string setting; an empty one reads as not set. Typed from the option table: an option with a
 * default comes back as `string` (only an explicit empty value could make it undefined, as before).
 */
export function str<Name extends StringOption>(r: Resolved, name: Name): Settings[Name] {
  const v = r.values[name];
  return (typeof v === "string" && v !== "" ? v : undefined) as Settings[Name];
}
export function list(r: Resolved, name: ListOption): string[] {
  const v = r.values[name];
  return Array.isArray(v) ? v : [];
}
/** A repeatable option of e-mail addresses (--via, --forward-to), checked and lower-cased. */
export function addresses(r: Resolved, name: AddressListOption): string[] {
  return list(r, name).map((a) => {
    if (!isMailAddress(a)) {
      throw new UsageError(`--${name} ${a} is not an e-mail address.`);
    }
    return a.toLowerCase();
  });
}

/** An int or duration (milliseconds) setting. */
export function num<Name extends NumberOption>(r: Resolved, name: Name): Settings[Name] {
  return r.values[name];
}
export function flag(r: Resolved, name: BooleanOption): boolean {
  return r.values[name] === true;
}

/** Spool, host tables and status files: $XDG_DATA_HOME/mailmeet or the platform's usual place. */
export function dataDir(): string {
  return dataDirFor(Deno.env.toObject());
}

/** The embedded default: one spool on this machine, no mail server. */
export function defaultSpool(): string {
  return join(dataDir(), "spool");
}

export function requireAddress(r: Resolved): string {
  const a = str(r, "address");
  if (!a) {
    throw new UsageError(
      r.configFile?.exists
        ? `Say who you are: the config file ${r.configFile.path} has no address; run \`mailmeet init --force\` to add it, or pass --address you@example.org.`
        : "No settings yet: run `mailmeet init` once (it asks for your address, mail servers and network key), or pass --address you@example.org and the other options.",
    );
  }
  if (!isMailAddress(a)) {
    throw new UsageError(`--address ${a} is not an e-mail address.`);
  }
  return a.toLowerCase();
}

export interface MailSettings {
  address: string;
  smtp: string;
  inbox: string;
  caCerts?: string[];
  pollMs: number;
  /** --idle-renew: how often an IMAP inbox renews IDLE (and checks the connection). */
  idleRenewMs: number;
  /** --marker: the subject text of mailmeet mail (doctor names it in filter advice). */
  marker: string;
  /** The stored OAuth2 sign-in, when --smtp or --inbox says auth=oauth2. */
  tokens?: StoredTokenSource & AccessTokenSource;
}

export async function mailSettings(r: Resolved): Promise<MailSettings> {
  const address = requireAddress(r);
  const spool = `maildir://${defaultSpool()}`;
  const smtp = str(r, "smtp") ?? spool;
  const inbox = str(r, "inbox") ?? spool;
  // Validate both now so a typo is one clear sentence before anything is sent.
  let oauth = false;
  for (const [name, url] of [["smtp", smtp], ["inbox", inbox]] as const) {
    try {
      oauth = parseAccount(url).auth === "oauth2" || oauth;
    } catch (err) {
      if (err instanceof MailError) throw new UsageError(`Check --${name}: ${err.message}`);
      throw err;
    }
  }
  let caCerts: string[] | undefined;
  const ca = str(r, "tls-ca");
  if (ca) {
    try {
      caCerts = [await Deno.readTextFile(ca)];
    } catch (err) {
      throw new UsageError(`Cannot read the CA certificate --tls-ca ${ca}: ${(err as Error).message}.`);
    }
  }
  const tokens = oauth ? await openSignIn(r) : undefined;
  return {
    address,
    smtp,
    inbox,
    caCerts,
    pollMs: num(r, "poll"),
    idleRenewMs: num(r, "idle-renew"),
    marker: str(r, "marker"),
    ...(tokens ? { tokens } : {}),
  };
}

/** Where the OAuth2 sign-in is kept: --oauth-token-file, else beside the config file. */
export function tokenFile(r: Resolved): string | undefined {
  const named = str(r, "oauth-token-file");
  if (named) return named;
  return r.configFile ? tokenFileFor(r.configFile.path) : undefined;
}

async function openSignIn(r: Resolved): Promise<StoredTokenSource> {
  const path = tokenFile(r);
  if (!path) {
    throw new UsageError(
      "The mail URLs ask for auth=oauth2 but there is no config file to find the sign-in beside; run `mailmeet init --oauth microsoft|google`, or pass --oauth-token-file FILE.",
    );
  }
  try {
    return await StoredTokenSource.open(path);
  } catch (err) {
    if (err instanceof OAuthError) throw new UsageError(err.message);
    throw err;
  }
}

export async function loadKey(r: Resolved): Promise<NetworkKey> {
  let text = str(r, "key");
  const file = str(r, "key-file");
  if (!text && file) {
    try {
      text = (await Deno.readTextFile(file)).trim();
    } catch (err) {
      throw keyFileError(r, file, err);
    }
  }
  if (!text) {
    throw new UsageError(
      "No network key: pass --key (from `mailmeet keygen`, or a shared passphrase) or --key-file FILE; everyone in the group must use the same one.",
    );
  }
  try {
    return await parseNetworkKey(text);
  } catch (err) {
    if (err instanceof ProtocolError) throw new UsageError(err.message);
    throw err;
  }
}

/** Why the key file cannot be read, and how to point mailmeet at the key again. */
function keyFileError(r: Resolved, file: string, err: unknown): UsageError {
  const named = r.sources["key-file"] === "file" && r.configFile
    ? ` (named in ${r.configFile.path})`
    : r.sources["key-file"] === "env"
    ? " (named by MAILMEET_KEY_FILE)"
    : "";
  if (err instanceof Deno.errors.NotFound) {
    return new UsageError(
      `The network key file ${file}${named} does not exist; if it moved, run \`mailmeet init --force --key-file NEW-PATH\` (init keeps its own copy of the key) or pass --key-file NEW-PATH.`,
    );
  }
  if (err instanceof Deno.errors.PermissionDenied) {
    return new UsageError(
      `Cannot read the network key file ${file}${named}: permission denied; check its owner and mode.`,
    );
  }
  if (err instanceof Deno.errors.IsADirectory) {
    return new UsageError(`The network key file ${file}${named} is a folder, not a file.`);
  }
  const text = err instanceof Error ? err.message.replace(/:?\s*(readfile|open) '.*'$/, "") : String(err);
  return new UsageError(`Cannot read the network key file ${file}${named}: ${text.replace(/\.$/, "")}.`);
}

export function userId(r: Resolved, address: string): string {
  const u = str(r, "user") ?? address.split("@")[0];
  if (!isValidUserId(u)) {
    throw new UsageError(`--user "${u}" is not a valid user id (1–64 printable characters).`);
  }
  return u;
}

export function parseHostPort(text: string, option: StringOption): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (
    !m || !Number.isInteger(port) || port < 0 || port > 65535 || !(isValidHost(m[1]) || m[1] === "0.0.0.0")
  ) {
    throw new UsageError(`--${option} ${text} is not IP:PORT (e.g. 0.0.0.0:47000 or [::]:47000).`);
  }
  return { host: m[1], port };
}

export function sinkFor(r: Resolved, name?: string): EventSink {
  return eventSink({ json: flag(r, "json"), quiet: flag(r, "quiet"), verbose: flag(r, "verbose"), name });
}
