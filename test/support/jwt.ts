import jwt, { type SignOptions } from 'jsonwebtoken';

/** config/test.json's JWT secret. */
export const TEST_JWT_SECRET = 'hookbus-test-secret';

export function tokenFor(tenantId: string | number, claims: Record<string, unknown> = {}, options: SignOptions = {}) {
  return jwt.sign({ tenantId, ...claims }, TEST_JWT_SECRET, { algorithm: 'HS256', expiresIn: '1h', ...options });
}

export const bearer = (tenantId: string | number, claims: Record<string, unknown> = {}) => ({
  Authorization: `Bearer ${tokenFor(tenantId, claims)}`,
});
