import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { VerifySettings } from './model.js';

/** Stripe's and Standard Webhooks' default tolerance for the signed timestamp. */
export const TOLERANCE_SECONDS = 300;

const hmac = (key: string | Buffer, ...parts: (string | Buffer)[]) => {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
};

/** Constant-time comparison of a digest with a signature as sent; any malformed input is false. */
function sameDigest(expected: Buffer, given: string, encoding: 'hex' | 'base64'): boolean {
  const valid = encoding === 'hex' ? /^[0-9a-fA-F]+$/ : /^[A-Za-z0-9+/]+={0,2}$/;
  if (!valid.test(given)) return false;
  const decoded = Buffer.from(given, encoding);
  return decoded.length === expected.length && timingSafeEqual(decoded, expected);
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
};

const fresh = (timestamp: string | undefined, nowSeconds: number): timestamp is string =>
  timestamp !== undefined &&
  /^\d{1,12}$/.test(timestamp) &&
  Math.abs(nowSeconds - Number(timestamp)) <= TOLERANCE_SECONDS;

/** True when the request carries a valid signature of `raw` under the hook's settings. */
export function verifySignature(
  settings: VerifySettings,
  raw: Buffer,
  headers: IncomingHttpHeaders,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  switch (settings.scheme) {
    case 'github': {
      // X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
      const given = /^sha256=(.+)$/.exec(header(headers, 'x-hub-signature-256') ?? '')?.[1];
      return given !== undefined && sameDigest(hmac(settings.secret, raw), given, 'hex');
    }
    case 'stripe': {
      // Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>[,v1=...]
      const pairs = (header(headers, 'stripe-signature') ?? '').split(',').map((p) => p.trim().split('='));
      const t = pairs.find(([k]) => k === 't')?.[1];
      if (!fresh(t, nowSeconds)) return false;
      const expected = hmac(settings.secret, `${t}.`, raw);
      return pairs.some(([k, v]) => k === 'v1' && v !== undefined && sameDigest(expected, v, 'hex'));
    }
    case 'standard-webhooks': {
      // webhook-signature: v1,<base64 HMAC-SHA256(base64-decoded secret, "<id>.<ts>.<body>")> [v1,...]
      const id = header(headers, 'webhook-id');
      const ts = header(headers, 'webhook-timestamp');
      if (!id || !fresh(ts, nowSeconds)) return false;
      const key = Buffer.from(settings.secret.replace(/^whsec_/, ''), 'base64');
      const expected = hmac(key, `${id}.${ts}.`, raw);
      return (header(headers, 'webhook-signature') ?? '')
        .split(' ')
        .some((sig) => sig.startsWith('v1,') && sameDigest(expected, sig.slice(3), 'base64'));
    }
    case 'hmac-sha256': {
      const given = (header(headers, settings.header) ?? '').trim().replace(/^sha256=/, '');
      return sameDigest(hmac(settings.secret, raw), given, settings.encoding);
    }
  }
}
