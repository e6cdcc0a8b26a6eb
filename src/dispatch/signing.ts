import { createHmac } from 'node:crypto';
import type { SigningSecret } from '../webhooks/model.js';

const PREFIX = 'whsec_';

/** The secrets that sign now: the current one first, then a rotated-out one until it expires. */
export function signingSecrets(secrets: readonly SigningSecret[], now = Date.now()): string[] {
  const current = secrets.filter((s) => s.expiresAt === null);
  const previous = secrets.filter((s) => s.expiresAt !== null && new Date(s.expiresAt).getTime() > now);
  return [...current, ...previous].map((s) => s.value);
}

/**
 * The Standard Webhooks `webhook-signature` header: `v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>`
 * for each secret, space-separated; the key is the base64 after `whsec_`.
 */
export function signatureHeader(secrets: readonly string[], id: string, timestamp: number, body: string): string {
  return secrets
    .map((secret) => {
      const key = Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64');
      const mac = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64');
      return `v1,${mac}`;
    })
    .join(' ');
}
