import { generateKeyText } from "../../protocol/keys.ts";
import type { Resolved } from "../options.ts";
import { flag } from "../context.ts";

export const KEYGEN_HELP = `mailmeet keygen — print a fresh network key to share with your group

Everyone in the group passes the same key with --key (or --key-file). Send it to friends over a
channel you trust (in person, a messenger), not in the clear by e-mail.

Example:
  mailmeet keygen > group.key && mailmeet join --key-file group.key ...`;

export function keygenCommand(r: Resolved): number {
  const key = generateKeyText();
  console.log(flag(r, "json") ? JSON.stringify({ event: "key", key }) : key);
  return 0;
}
