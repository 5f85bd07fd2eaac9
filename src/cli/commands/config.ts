/**
 * `mailmeet config show`: every setting as the commands will see it, where each came from (flag,
 * MAILMEET_* variable, config file, default), with secrets masked: the password inside a mail URL
 * and the network key never appear; the key is named by its fingerprint.
 */
import { redact } from "../../mail/account.ts";
import { formatDuration } from "../config_file.ts";
import { parseNetworkKey } from "../../protocol/keys.ts";
import { flag, str } from "../context.ts";
import { UsageError } from "../errors.ts";
import { envName, type OptionName, OPTIONS, type Resolved, type Value } from "../options.ts";
import { paint } from "../output.ts";
import { defaultConfigPath } from "../paths.ts";

export const CONFIG_HELP =
  `mailmeet config show — the settings in effect, secrets masked, and where each came from

Shows every option as join, host and the others will resolve it: from a flag, a MAILMEET_*
variable, the config file (--config, MAILMEET_CONFIG, or the default one written by
\`mailmeet init\`), or the built-in default. Passwords inside mail URLs are shown as ***; the network
key is shown only by its fingerprint (the same for everyone in a group). \`mailmeet config path\`
prints the config file's path.

Examples:
  mailmeet config show
  MAILMEET_VIA=lan-host@game.test mailmeet config show --json`;

/** Per-run switches that say nothing about the setup. */
const HIDDEN = new Set<OptionName>(["help", "version", "config"]);

export interface ShownSetting {
  name: string;
  /** Masked for display; undefined when unset. */
  value: string | number | boolean | string[] | undefined;
  source: string;
  /** The variable or file it came from. */
  from?: string;
}

/** A value safe to print: URLs without their password, never a key. */
export function maskValue(name: string, value: Value): ShownSetting["value"] {
  if (value === undefined || value === "") return undefined;
  const spec = OPTIONS.find((o) => o.name === name);
  if (spec?.kind === "duration" && typeof value === "number") return formatDuration(value);
  if (!spec?.secret) return value;
  if (typeof value === "string" && /^[a-z0-9+.-]+:\/\//i.test(value)) return redact(value);
  return "***";
}

export function shownSettings(r: Resolved): ShownSetting[] {
  const out: ShownSetting[] = [];
  for (const spec of OPTIONS) {
    if (HIDDEN.has(spec.name)) continue;
    const source = r.sources[spec.name];
    const value = maskValue(spec.name, r.values[spec.name]);
    out.push({
      name: spec.name,
      value,
      source,
      from: source === "env" ? envName(spec.name) : source === "file" ? r.configFile?.path : undefined,
    });
  }
  return out;
}

function display(v: ShownSetting["value"]): string {
  if (v === undefined) return "(not set)";
  if (Array.isArray(v)) return v.length ? v.join(", ") : "(none)";
  return String(v);
}

export async function configCommand(r: Resolved): Promise<number> {
  const sub = r.positionals[0] ?? "show";
  const json = flag(r, "json");
  if (sub === "path") {
    const path = r.configFile?.path ?? defaultConfigPath(Deno.env.toObject());
    if (!path) throw new UsageError("No config folder: neither HOME nor XDG_CONFIG_HOME is set.");
    console.log(json ? JSON.stringify({ event: "config_path", path, exists: !!r.configFile?.exists }) : path);
    return 0;
  }
  if (sub !== "show") {
    throw new UsageError(
      `Unknown \`mailmeet config ${sub}\`; use \`mailmeet config show\` or \`config path\`.`,
    );
  }
  const settings = shownSettings(r);
  // The key's fingerprint lets a group check they share one key without showing it.
  let fingerprint: string | undefined;
  const keyText = str(r, "key") ?? await readQuietly(str(r, "key-file"));
  if (keyText) {
    fingerprint = await parseNetworkKey(keyText).then((k) => k.fingerprint, () => "(not a valid key)");
  }
  const file = r.configFile;
  if (json) {
    console.log(JSON.stringify({
      event: "config",
      file: file?.path ?? null,
      file_origin: file?.origin ?? null,
      key_fingerprint: fingerprint ?? null,
    }));
    for (const s of settings) console.log(JSON.stringify({ event: "setting", ...s, value: s.value ?? null }));
    return 0;
  }
  const fileLine = file
    ? `${file.path} (${
      file.origin === "flag" ? "--config" : file.origin === "env" ? "MAILMEET_CONFIG" : "the default location"
    })`
    : `none (\`mailmeet init\` writes ${defaultConfigPath(Deno.env.toObject()) ?? "one"})`;
  console.log(`config file: ${fileLine}`);
  if (fingerprint) console.log(`network key fingerprint: ${fingerprint}`);
  const width = Math.max(...settings.map((s) => s.name.length));
  const valueWidth = Math.min(60, Math.max(...settings.map((s) => display(s.value).length)));
  for (const s of settings) {
    const where = s.source === "env" ? `env ${s.from}` : s.source;
    const line = `${s.name.padEnd(width)}  ${display(s.value).padEnd(valueWidth)}  ${where}`;
    console.log(s.source === "default" ? paint("2", line) : line);
  }
  return 0;
}

async function readQuietly(path: string | undefined): Promise<string | undefined> {
  if (!path) return undefined;
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    return undefined;
  }
}
