/**
 * Where mailmeet keeps things on each platform: the config file (the usual per-user config folder)
 * and the data folder (spool, host tables, status files of running nodes). Pure functions of the
 * environment and the OS, so tests pass their own.
 */
import { basename, dirname, join } from "node:path";

export type Env = Record<string, string | undefined>;
export type Os = typeof Deno.build.os;

/** An environment variable, treating an empty one as unset (XDG Base Directory spec). */
function get(env: Env, name: string): string | undefined {
  const v = env[name];
  return v ? v : undefined;
}

function home(env: Env): string | undefined {
  return get(env, "HOME") ?? get(env, "USERPROFILE");
}

/**
 * The per-user config folder: $XDG_CONFIG_HOME/mailmeet when set (any OS), else
 * ~/.config/mailmeet (Linux, BSD), ~/Library/Application Support/mailmeet (macOS),
 * %APPDATA%\mailmeet (Windows). Undefined when the environment names no home at all.
 */
export function configDir(env: Env, os: Os = Deno.build.os): string | undefined {
  const xdg = get(env, "XDG_CONFIG_HOME");
  if (xdg) return join(xdg, "mailmeet");
  if (os === "windows") {
    const appData = get(env, "APPDATA");
    if (appData) return join(appData, "mailmeet");
    const h = home(env);
    return h ? join(h, "AppData", "Roaming", "mailmeet") : undefined;
  }
  const h = home(env);
  if (!h) return undefined;
  if (os === "darwin") return join(h, "Library", "Application Support", "mailmeet");
  return join(h, ".config", "mailmeet");
}

/** The config file read when neither --config nor MAILMEET_CONFIG names one (if it exists). */
export function defaultConfigPath(env: Env, os: Os = Deno.build.os): string | undefined {
  const dir = configDir(env, os);
  return dir ? join(dir, "config.json") : undefined;
}

/**
 * The data folder: $XDG_DATA_HOME/mailmeet when set, else ~/.local/share/mailmeet (Linux, BSD),
 * ~/Library/Application Support/mailmeet (macOS), %LOCALAPPDATA%\mailmeet (Windows); "./mailmeet"
 * when the environment names no home.
 */
export function dataDirFor(env: Env, os: Os = Deno.build.os): string {
  const xdg = get(env, "XDG_DATA_HOME");
  if (xdg) return join(xdg, "mailmeet");
  if (os === "windows") {
    const local = get(env, "LOCALAPPDATA");
    if (local) return join(local, "mailmeet");
  }
  const h = home(env) ?? ".";
  if (os === "darwin") return join(h, "Library", "Application Support", "mailmeet");
  if (os === "windows") return join(h, "AppData", "Local", "mailmeet");
  return join(h, ".local", "share", "mailmeet");
}

/** Status files of the nodes running on this machine (`mailmeet status` reads them). */
export function statusDirFor(env: Env, os: Os = Deno.build.os): string {
  return join(dataDirFor(env, os), "run");
}

/** Where `init` keeps a network key it creates or imports: beside the config file. */
export function keyFileFor(configPath: string): string {
  const base = basename(configPath).replace(/\.json$/i, "");
  return join(dirname(configPath), base === "config" ? "network.key" : `${base}.key`);
}
