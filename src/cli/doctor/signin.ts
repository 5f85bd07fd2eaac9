/**
 * The OAuth2 sign-in: renewing the access token now is the only way to learn whether the provider
 * still honours it (a revoked refresh token looks like any other until it is used).
 */
import { fileMode } from "../config_file.ts";
import { sentenceFor } from "../errors.ts";
import { signInExpiredSentence, type StoredTokenSource } from "../../oauth/token_source.ts";
import { type CheckResult, ms } from "./check.ts";
import { isRevoked, signInFix } from "./fixes.ts";

export async function checkSignIn(
  tokens: StoredTokenSource,
  report: (c: CheckResult) => void,
): Promise<boolean> {
  const { user, client } = tokens.signIn;
  const mode = Deno.build.os === "windows" ? undefined : await fileMode(tokens.path).catch(() => undefined);
  if (mode !== undefined && (mode & 0o077) !== 0) {
    report({
      check: "oauth_file",
      status: "fail",
      title: `sign-in file ${tokens.path} can be read by others (mode ${mode.toString(8).padStart(3, "0")})`,
      fix: `It lets anyone read and send your mail: chmod 600 ${tokens.path}`,
    });
  }
  const t0 = performance.now();
  try {
    await tokens.refresh();
    report({
      check: "oauth",
      status: "ok",
      title: `sign-in: OAuth2 (${client.provider}) for ${user}; the access token was renewed`,
      ms: ms(t0),
    });
    return true;
  } catch (err) {
    const revoked = isRevoked(err);
    report({
      check: "oauth",
      status: "fail",
      title: revoked
        ? `sign-in: ${signInExpiredSentence(user, client.provider)}.`
        : `sign-in: ${sentenceFor(err)}`,
      fix: signInFix(err),
    });
    return false;
  }
}

/** The mail steps a failed sign-in leaves untried. */
export function skipped(report: (c: CheckResult) => void, check: string, what: string): false {
  report({ check, status: "skip", title: `${what}: not tried without a valid sign-in` });
  return false;
}
