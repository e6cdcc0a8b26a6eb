import jwt, { type Algorithm, type JwtPayload } from 'jsonwebtoken';
import type { Request, RequestHandler } from 'express';
import type { Config } from '../config/index.js';
import { HttpProblem } from './problem.js';

export interface Caller {
  tenantId: string;
  admin: boolean;
  /** Who acts: the token's `sub`, else the tenant (recorded as createdBy/updatedBy). */
  subject: string;
}

const TENANT_ID = /^[A-Za-z0-9_-]{1,64}$/;

const unauthorized = (detail: string) =>
  new HttpProblem(401, detail, {
    type: 'unauthorized',
    headers: { 'WWW-Authenticate': 'Bearer realm="hookbus", error="invalid_token"' },
  });

/** Verifies `Authorization: Bearer <JWT>` and returns who is calling; throws a 401 problem otherwise. */
export function authenticate(jwtConfig: Config['jwt'], authorization: string | undefined): Caller {
  const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/.exec(authorization ?? '');
  if (!match) throw unauthorized('A bearer token is required.');
  const token = match[1]!;

  // The key depends on the algorithm family; the allow-list is enforced by verify() below.
  const header = jwt.decode(token, { complete: true })?.header;
  const algorithm = header?.alg as Algorithm | undefined;
  if (!algorithm || !(jwtConfig.algorithms as string[]).includes(algorithm)) {
    throw unauthorized('The token is not signed with an accepted algorithm.');
  }
  const key = algorithm.startsWith('HS') ? jwtConfig.secret : jwtConfig.publicKey;
  if (!key) throw unauthorized('The token is not signed with an accepted algorithm.');

  let payload: JwtPayload;
  try {
    payload = jwt.verify(token, key, {
      algorithms: [algorithm],
      ...(jwtConfig.issuer ? { issuer: jwtConfig.issuer } : {}),
      ...(jwtConfig.audience ? { audience: jwtConfig.audience } : {}),
    }) as JwtPayload;
  } catch (error) {
    const expired = (error as Error).name === 'TokenExpiredError';
    throw unauthorized(expired ? 'The token has expired.' : 'The token is not valid.');
  }
  if (typeof payload !== 'object' || payload === null) throw unauthorized('The token is not valid.');

  const claim: unknown = payload[jwtConfig.tenantClaim];
  const tenantId = typeof claim === 'string' || typeof claim === 'number' ? String(claim) : '';
  if (!TENANT_ID.test(tenantId)) {
    throw unauthorized(`The token's ${jwtConfig.tenantClaim} claim must be 1-64 characters of A-Z, a-z, 0-9, _ and -.`);
  }
  const subject = typeof payload.sub === 'string' && payload.sub.length <= 256 ? payload.sub : tenantId;
  return { tenantId, admin: payload[jwtConfig.adminClaim] === true, subject };
}

/** Express middleware: authenticates every request of the router it is mounted on. */
export function requireCaller(jwtConfig: Config['jwt']): RequestHandler {
  return (req, res, next) => {
    res.locals.caller = authenticate(jwtConfig, req.headers.authorization);
    next();
  };
}

export const callerOf = (req: Request): Caller => (req.res!.locals as { caller: Caller }).caller;
