import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConfigError, CvcError } from '@cvc/core';

/** Who a bearer token belongs to: people running CV jobs, or worker nodes. */
export type Role = 'user' | 'worker';

/** A call without a valid token (UNAUTHENTICATED) or with the wrong kind of token (PERMISSION_DENIED). */
export class AuthError extends CvcError<'UNAUTHENTICATED' | 'PERMISSION_DENIED'> {
  constructor(
    readonly kind: 'UNAUTHENTICATED' | 'PERMISSION_DENIED',
    message: string,
  ) {
    super(kind, message);
  }
}

/** Shortest token accepted in configuration (a generated one is 43 characters). */
export const MIN_TOKEN_LENGTH = 16;

/** A random token: 32 bytes, base64url. */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Splits a comma-separated token list (several tokens per role allow rotation). */
export function parseTokens(value: string | undefined, setting: string): string[] {
  const tokens = (value ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  for (const [i, t] of tokens.entries()) {
    // The message never contains the token itself.
    if (t.length < MIN_TOKEN_LENGTH) throw new ConfigError(setting, `token #${i + 1} is ${t.length} characters; at least ${MIN_TOKEN_LENGTH} are required`);
    if (/\s/.test(t)) throw new ConfigError(setting, `token #${i + 1} contains whitespace`);
  }
  return tokens;
}

/** Checks `authorization` metadata against the configured tokens. */
export interface Authenticator {
  /** The caller's role; throws AuthError (UNAUTHENTICATED) for a missing or unknown token. */
  authenticate(authorization: string | undefined): Role;
  /** authenticate(), then PERMISSION_DENIED unless the role is `need`. */
  authorize(authorization: string | undefined, need: Role, method: string): Role;
}

const digest = (t: string): Buffer => createHash('sha256').update(t).digest();

/**
 * Bearer-token authentication: `authorization: Bearer TOKEN`. Tokens are
 * compared as sha256 digests in constant time, against every configured token.
 */
export function createTokenAuthenticator(o: { userTokens: readonly string[]; workerTokens: readonly string[] }): Authenticator {
  if (o.userTokens.length === 0) throw new ConfigError('CVC_USER_TOKENS', 'at least one user token is required');
  if (o.workerTokens.length === 0) throw new ConfigError('CVC_WORKER_TOKENS', 'at least one worker token is required');
  const known: { d: Buffer; role: Role }[] = [
    ...o.userTokens.map((t) => ({ d: digest(t), role: 'user' as const })),
    ...o.workerTokens.map((t) => ({ d: digest(t), role: 'worker' as const })),
  ];
  const users = new Set(o.userTokens);
  if (o.workerTokens.some((t) => users.has(t))) throw new ConfigError('CVC_WORKER_TOKENS', 'a worker token must not also be a user token');
  const authenticate = (authorization: string | undefined): Role => {
    if (!authorization) throw new AuthError('UNAUTHENTICATED', 'missing bearer token: send "authorization: Bearer TOKEN" (cvc reads it from CVC_TOKEN)');
    const m = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!m?.[1]) throw new AuthError('UNAUTHENTICATED', 'malformed authorization header: expected "Bearer TOKEN"');
    const d = digest(m[1]);
    let role: Role | undefined;
    for (const k of known) if (timingSafeEqual(k.d, d)) role = k.role;
    if (!role) throw new AuthError('UNAUTHENTICATED', 'invalid token');
    return role;
  };
  return {
    authenticate,
    authorize: (authorization, need, method) => {
      const role = authenticate(authorization);
      if (role !== need) throw new AuthError('PERMISSION_DENIED', `a ${role} token may not call ${method}; it needs a ${need} token`);
      return role;
    },
  };
}
