import { randomBytes } from 'node:crypto';
import type { SigningSecret } from './model.js';

/** How long a rotated-out secret keeps signing, so receivers can switch over. */
export const PREVIOUS_SECRET_VALID_MS = 24 * 3_600_000;

/** `whsec_` + base64 of 32 random bytes: the Standard Webhooks secret format. */
export const newSigningSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

/** A new current secret; the old current one signs for 24 h more; older ones are dropped. */
export function rotated(secrets: SigningSecret[], now = Date.now()): SigningSecret[] {
  const current = secrets.find((s) => s.expiresAt === null);
  return [
    { value: newSigningSecret(), expiresAt: null },
    ...(current ? [{ value: current.value, expiresAt: new Date(now + PREVIOUS_SECRET_VALID_MS) }] : []),
  ];
}
