/**
 * Access tokens for the mail clients from a stored sign-in: the stored token while it has more than
 * REFRESH_MARGIN_MS left, else a refreshed one (RFC 6749 §6), written back before it is used so a
 * rotated refresh token is never lost. One refresh at a time: IMAP, POP3 and SMTP may ask at once.
 * Before refreshing it reads the file again: another mailmeet process of the same config (an app
 * beside the node) may have renewed the sign-in already, and its refresh token is then the newer.
 */
import type { AccessTokenSource } from "../mail/access_token.ts";
import { MailError } from "../mail/errors.ts";
import { OAuthError } from "./errors.ts";
import { type Fetch, refreshAccessToken } from "./token_endpoint.ts";
import { readSignIn, type StoredSignIn, writeSignIn } from "./token_store.ts";

/** Refresh this long before the stated expiry: a login takes a while, and clocks differ. */
export const REFRESH_MARGIN_MS = 5 * 60_000;

export interface TokenSourceDeps {
  now?: () => number;
  fetch?: Fetch;
  /** Persists a renewed sign-in; the token file by default. */
  save?: (s: StoredSignIn) => Promise<void>;
  /** Reads the sign-in as stored now; the token file by default. */
  load?: () => Promise<StoredSignIn | undefined>;
}

export class StoredTokenSource implements AccessTokenSource {
  #signIn: StoredSignIn;
  #now: () => number;
  #fetch?: Fetch;
  #save: (s: StoredSignIn) => Promise<void>;
  #load: () => Promise<StoredSignIn | undefined>;
  #refreshing?: Promise<string>;

  constructor(signIn: StoredSignIn, readonly path: string, deps: TokenSourceDeps = {}) {
    this.#signIn = signIn;
    this.#now = deps.now ?? Date.now;
    this.#fetch = deps.fetch;
    this.#save = deps.save ?? ((s) => writeSignIn(path, s));
    this.#load = deps.load ?? (() => readSignIn(path));
  }

  /** The sign-in file at `path`; a config error naming init when there is none. */
  static async open(path: string, deps: TokenSourceDeps = {}): Promise<StoredTokenSource> {
    const signIn = await readSignIn(path);
    if (!signIn) {
      throw new OAuthError(
        `No OAuth2 sign-in at ${path}; run \`mailmeet init --force --oauth microsoft|google\` to sign in.`,
        "config",
      );
    }
    return new StoredTokenSource(signIn, path, deps);
  }

  get signIn(): StoredSignIn {
    return this.#signIn;
  }

  /** True when the stored access token is within the refresh margin of its expiry (or past it). */
  get due(): boolean {
    const exp = this.#signIn.tokens.expiresAt;
    return exp !== undefined && this.#now() >= exp - REFRESH_MARGIN_MS;
  }

  accessToken(opts: { renew?: boolean } = {}): Promise<string> {
    if (!opts.renew && !this.due) return Promise.resolve(this.#signIn.tokens.accessToken);
    this.#refreshing ??= this.#refresh(opts.renew ?? false).finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  /** A new access token now, whatever the stored one's expiry; errors stay OAuthErrors (doctor). */
  async refresh(): Promise<void> {
    await this.#refreshRaw();
  }

  async #refreshRaw(renew = true): Promise<string> {
    const stored = await this.#load().catch(() => undefined);
    if (stored && stored.tokens.accessToken !== this.#signIn.tokens.accessToken) {
      this.#signIn = stored;
      if (!renew && !this.due) return stored.tokens.accessToken;
    }
    const { client, tokens } = this.#signIn;
    if (!tokens.refreshToken) {
      throw new OAuthError(
        `The sign-in for ${this.#signIn.user} has no refresh token, so its access token cannot be renewed`,
        "revoked",
      );
    }
    const fresh = await refreshAccessToken(client, tokens.refreshToken, {
      fetch: this.#fetch,
      now: this.#now,
    });
    this.#signIn = { ...this.#signIn, tokens: fresh };
    await this.#save(this.#signIn);
    return fresh.accessToken;
  }

  async #refresh(renew: boolean): Promise<string> {
    try {
      return await this.#refreshRaw(renew);
    } catch (err) {
      throw mailErrorOf(err, this.#signIn.user, this.#signIn.client.provider);
    }
  }
}

/** The mail layer's view of a failed refresh: "auth" needs the user, "temporary" only time. */
export function mailErrorOf(err: unknown, user: string, provider: string): MailError {
  if (!(err instanceof OAuthError)) {
    return new MailError(`Renewing the OAuth2 access token failed: ${String(err)}.`, "temporary", {
      cause: err,
    });
  }
  if (err.code === "revoked") {
    // The provider's own words stay in `cause` (--debug); the user gets the one sentence.
    return new MailError(`${signInExpiredSentence(user, provider)}.`, "auth", { cause: err });
  }
  if (err.code === "unreachable") return new MailError(err.message, "temporary", { cause: err });
  return new MailError(err.message, err.code === "config" ? "config" : "auth", { cause: err });
}

/** The one sentence doctor and the clients give when the sign-in is gone. */
export function signInExpiredSentence(user: string, provider: string): string {
  return `The OAuth2 sign-in for ${user} has expired or was revoked; sign in again with ` +
    `\`mailmeet init --force --oauth ${provider}\``;
}
