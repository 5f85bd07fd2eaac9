/**
 * The sign-in kept on disk: one JSON file beside the config, owner-only (0600) like the config and
 * the network key, written whole to a temporary name first so a crash never leaves half a file.
 * It carries the client and endpoints too, so a token can be renewed with nothing else at hand.
 */
import { basename, dirname, join } from "node:path";
import { OAuthError } from "./errors.ts";
import type { OAuthClient } from "./providers.ts";
import type { TokenSet } from "./token_endpoint.ts";

export const TOKEN_FILE_MODE = 0o600;
const DIR_MODE = 0o700;

export interface StoredSignIn {
  readonly client: OAuthClient;
  /** The mail account the tokens are for. */
  readonly user: string;
  readonly tokens: TokenSet;
}

/** Where `init` keeps the sign-in: beside the config file (config.json → oauth-token.json). */
export function tokenFileFor(configPath: string): string {
  const base = basename(configPath).replace(/\.json$/i, "");
  return join(dirname(configPath), base === "config" ? "oauth-token.json" : `${base}.oauth-token.json`);
}

interface FileShape {
  provider: string;
  client_id: string;
  client_secret?: string;
  device_url: string;
  token_url: string;
  revoke_url?: string;
  scope: string;
  user: string;
  access_token: string;
  refresh_token?: string;
  expires_at?: string;
}

export function signInText(s: StoredSignIn): string {
  const f: FileShape = {
    provider: s.client.provider,
    client_id: s.client.clientId,
    ...(s.client.clientSecret ? { client_secret: s.client.clientSecret } : {}),
    device_url: s.client.deviceUrl,
    token_url: s.client.tokenUrl,
    ...(s.client.revokeUrl ? { revoke_url: s.client.revokeUrl } : {}),
    scope: s.client.scope,
    user: s.user,
    access_token: s.tokens.accessToken,
    ...(s.tokens.refreshToken ? { refresh_token: s.tokens.refreshToken } : {}),
    ...(s.tokens.expiresAt !== undefined ? { expires_at: new Date(s.tokens.expiresAt).toISOString() } : {}),
  };
  return JSON.stringify(f, null, 2) + "\n";
}

export function parseSignIn(text: string, path: string): StoredSignIn {
  let f: Partial<FileShape>;
  try {
    f = JSON.parse(text);
  } catch (err) {
    throw new OAuthError(`The sign-in file ${path} is not valid JSON: ${(err as Error).message}.`, "config");
  }
  const need = ["provider", "client_id", "device_url", "token_url", "scope", "user", "access_token"] as const;
  for (const k of need) {
    if (typeof f?.[k] !== "string") {
      throw new OAuthError(
        `The sign-in file ${path} lacks "${k}"; sign in again with \`mailmeet init --force --oauth …\`.`,
        "config",
      );
    }
  }
  const expiresAt = f.expires_at ? Date.parse(f.expires_at) : undefined;
  return {
    client: {
      provider: f.provider!,
      clientId: f.client_id!,
      ...(f.client_secret ? { clientSecret: f.client_secret } : {}),
      deviceUrl: f.device_url!,
      tokenUrl: f.token_url!,
      ...(f.revoke_url ? { revokeUrl: f.revoke_url } : {}),
      scope: f.scope!,
    },
    user: f.user!,
    tokens: {
      accessToken: f.access_token!,
      ...(f.refresh_token ? { refreshToken: f.refresh_token } : {}),
      ...(expiresAt !== undefined && Number.isFinite(expiresAt) ? { expiresAt } : {}),
    },
  };
}

export async function readSignIn(path: string): Promise<StoredSignIn | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new OAuthError(`Cannot read the sign-in file ${path}: ${(err as Error).message}.`, "config", {
      cause: err,
    });
  }
  return parseSignIn(text, path);
}

/** Writes the sign-in owner-only, replacing the old file in one rename. */
export async function writeSignIn(path: string, s: StoredSignIn): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.mkdir(dirname(path), { recursive: true, mode: DIR_MODE });
    await Deno.writeTextFile(tmp, signInText(s), { mode: TOKEN_FILE_MODE, createNew: true });
    // The creation mode passes through the umask; set it outright (Windows has no mode bits).
    if (Deno.build.os !== "windows") await Deno.chmod(tmp, TOKEN_FILE_MODE);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw new OAuthError(`Cannot write the sign-in file ${path}: ${(err as Error).message}.`, "config", {
      cause: err,
    });
  }
}

/** Removes the sign-in file; true when there was one. */
export async function removeSignIn(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new OAuthError(`Cannot remove the sign-in file ${path}: ${(err as Error).message}.`, "config", {
      cause: err,
    });
  }
}
