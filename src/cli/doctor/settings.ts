/** doctor's first step: the settings (address, mail URLs), the network key, the config file's mode. */
import { fileMode } from "../config_file.ts";
import { loadKey, type MailSettings, mailSettings, str, userId } from "../context.ts";
import { sentenceFor } from "../errors.ts";
import type { Resolved } from "../options.ts";
import type { NetworkKey } from "../../protocol/keys.ts";
import type { Report } from "./check.ts";

export interface Settings {
  mail: MailSettings;
  /** Absent when the key could not be loaded (reported as ✗ already). */
  key?: NetworkKey;
  user: string;
}

/** Reports the settings; undefined when there is no address or a URL is wrong (nothing else can run). */
export async function checkSettings(r: Resolved, report: Report): Promise<Settings | undefined> {
  // Settings: without an address and valid URLs nothing else can run.
  let mail: MailSettings;
  try {
    mail = await mailSettings(r);
  } catch (err) {
    report({
      check: "settings",
      status: "fail",
      title: `settings: ${sentenceFor(err)}`,
      fix:
        "Run `mailmeet init` to write them, or pass the options (`mailmeet config show` shows what is set).",
    });
    return undefined;
  }
  let key: NetworkKey | undefined;
  let keyError: unknown;
  try {
    key = await loadKey(r);
  } catch (err) {
    keyError = err;
  }
  let user = mail.address.split("@")[0];
  try {
    user = userId(r, mail.address);
  } catch (err) {
    keyError ??= err;
  }
  report(
    key && !keyError
      ? {
        check: "settings",
        status: "ok",
        title: `settings: ${mail.address} as "${user}", network key ${key.fingerprint} (${
          key.source === "key" ? "a key from `mailmeet keygen`" : "a passphrase"
        }${keyOrigin(r)})`,
      }
      : {
        check: "settings",
        status: "fail",
        title: `settings: ${sentenceFor(keyError)}`,
        fix:
          "Everyone in a group uses the same key: `mailmeet init --key-file FILE` imports the one you were given.",
      },
  );
  const file = r.configFile;
  if (file?.exists && Deno.build.os !== "windows") {
    const mode = await fileMode(file.path).catch(() => undefined);
    if (mode !== undefined && (mode & 0o077) !== 0) {
      report({
        check: "config_file",
        status: "fail",
        title: `config file ${file.path} can be read by others (mode ${mode.toString(8).padStart(3, "0")})`,
        fix: `It holds your mail password: chmod 600 ${file.path}`,
      });
    } else if (mode !== undefined) {
      report({
        check: "config_file",
        status: "ok",
        title: `config file ${file.path} is readable by you only`,
      });
    }
  }
  return { mail, key, user };
}

/** Where the key came from, for the settings line: ", from FILE" or ", given with --key". */
function keyOrigin(r: Resolved): string {
  if (str(r, "key")) {
    return r.sources.key === "env"
      ? ", from MAILMEET_KEY"
      : r.sources.key === "file"
      ? ", in the config file"
      : ", given with --key";
  }
  const file = str(r, "key-file");
  return file ? `, from ${file}` : "";
}
