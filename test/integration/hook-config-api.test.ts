import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { bearer, TEST_JWT_SECRET } from '../support/jwt.js';

const json = { 'content-type': 'application/json' };
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('the hook config API', () => {
  let app: App;
  const call = (method: string, path: string, tenant: string | number | null, body?: unknown, headers = {}) =>
    fetch(`${app.url}${path}`, {
      method,
      headers: { ...json, ...(tenant === null ? {} : bearer(tenant)), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
  const create = async (tenant: string | number, body: unknown, headers = {}) => {
    const res = await call('POST', '/wh/config', tenant, body, headers);
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  };

  beforeAll(async () => {
    app = await startTestApp({
      HOOKBUS_ROLES: 'api',
      PUBLIC_BASE_URL: 'https://hooks.example.com/',
      ORIG_SERVER_HOSTS: 'mydomain.gaiahub.io',
    });
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
  });

  describe('create, read, update, delete', () => {
    it('When a hook is created, then it has exactly the fields of the seed and its non-secret hookId, with fresh tokens', async () => {
      const hook = await create(5618780000, { datasource: 'github', event: 'push', tsField: 'commits[0].timestamp' });
      expect(Object.keys(hook).sort()).toEqual(
        ['apiToken', 'createdAt', 'datasource', 'event', 'hookId', 'hookUrl', 'tenantId', 'token', 'tsField'].sort(),
      );
      expect(hook.hookId).toMatch(/^hk_[0-9a-f]{32}$/);
      expect(hook.hookId).not.toContain(hook.token);
      expect(hook).toMatchObject({
        datasource: 'github',
        event: 'push',
        tenantId: '5618780000',
        tsField: 'commits[0].timestamp',
      });
      expect(hook.apiToken).toMatch(UUID_V4);
      expect(hook.token).toMatch(/^[0-9a-f]{40}$/);
      expect(Math.abs((hook.createdAt as number) - Date.now())).toBeLessThan(60_000);
      expect(hook.hookUrl).toBe(`https://hooks.example.com/wh/${String(hook.apiToken)}/${String(hook.token)}`);
    });

    it('When the same datasource and event are posted again, then the hook is updated with the same tokens and the tsField rules', async () => {
      const first = await create('t-update', { datasource: 'gitlab', event: 'push', tsField: 'a.b' });
      const unchanged = await create('t-update', { datasource: 'gitlab', event: 'push' });
      expect(unchanged).toMatchObject({ token: first.token, apiToken: first.apiToken, tsField: 'a.b' });
      expect(unchanged.createdAt).toBe(first.createdAt);

      const changed = await create('t-update', { datasource: 'gitlab', event: 'push', tsField: 'x[2].y' });
      expect(changed).toMatchObject({ token: first.token, tsField: 'x[2].y' });

      const cleared = await create('t-update', { datasource: 'gitlab', event: 'push', tsField: '' });
      expect(cleared).toMatchObject({ token: first.token, tsField: null });

      const other = await create('t-update', { datasource: 'gitlab', event: 'tag_push' });
      expect(other.token).not.toBe(first.token);
    });

    it('When hooks are listed, read, validated and deleted, then each answer is as the seed says', async () => {
      const a = await create('t-crud', { datasource: 'circleci', event: 'build' });
      const b = await create('t-crud', { datasource: 'dockerhub', event: 'push' });

      const list = await call('GET', '/wh/config', 't-crud');
      expect(list.status).toBe(200);
      expect(((await list.json()) as { token: string }[]).map((h) => h.token)).toEqual([a.token, b.token]);

      const one = await call('GET', `/wh/config/${String(a.token)}`, 't-crud');
      expect(one.status).toBe(200);
      expect(await one.json()).toEqual(a);

      const head = await call('HEAD', `/wh/config/${String(a.token)}`, 't-crud');
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');

      const del = await call('DELETE', `/wh/config/${String(a.token)}`, 't-crud');
      expect(del.status).toBe(204);
      expect(await del.text()).toBe('');
      expect((await call('GET', `/wh/config/${String(a.token)}`, 't-crud')).status).toBe(404);
      expect((await call('HEAD', `/wh/config/${String(a.token)}`, 't-crud')).status).toBe(404);
      expect((await call('DELETE', `/wh/config/${String(a.token)}`, 't-crud')).status).toBe(404);
    });

    it('When a token is not 40 hex characters, then it is simply not found', async () => {
      const res = await call('GET', '/wh/config/not-a-token', 't-crud');
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      expect(await res.json()).toEqual({
        type: 'about:blank',
        title: 'Not Found',
        status: 404,
        detail: 'No hook with that token.',
      });
    });

    it('When X-ORIG-SERVER names an allowed host, then hookUrl is on https://webhook.<host>; any other is ignored', async () => {
      const allowed = await create(
        't-orig',
        { datasource: 'github', event: 'push' },
        { 'X-ORIG-SERVER': 'mydomain.gaiahub.io' },
      );
      expect(allowed.hookUrl).toBe(
        `https://webhook.mydomain.gaiahub.io/wh/${String(allowed.apiToken)}/${String(allowed.token)}`,
      );
      const ignored = await create('t-orig', { datasource: 'github', event: 'push' }, { 'X-ORIG-SERVER': 'evil.com' });
      expect(ignored.hookUrl).toBe(`https://hooks.example.com/wh/${String(ignored.apiToken)}/${String(ignored.token)}`);
    });

    it('When a hook has source verification, then its secret is never returned', async () => {
      const hook = await create('t-secret', {
        datasource: 'acme',
        event: 'ping',
        verify: { scheme: 'hmac-sha256', secret: 'very-secret-value', header: 'X-Acme-Signature' },
      });
      expect(hook.verify).toEqual({ scheme: 'hmac-sha256', header: 'x-acme-signature', encoding: 'hex' });
      const all = await Promise.all([
        call('GET', '/wh/config', 't-secret').then((r) => r.text()),
        call('GET', `/wh/config/${String(hook.token)}`, 't-secret').then((r) => r.text()),
      ]);
      for (const body of [JSON.stringify(hook), ...all]) expect(body).not.toContain('very-secret-value');
    });
  });

  describe('tenant isolation', () => {
    it("When another tenant reads, validates or deletes a tenant's hook, then every answer is 404", async () => {
      const hook = await create('tenant-a', { datasource: 'github', event: 'push' });
      const path = `/wh/config/${String(hook.token)}`;
      expect((await call('GET', path, 'tenant-b')).status).toBe(404);
      expect((await call('HEAD', path, 'tenant-b')).status).toBe(404);
      expect((await call('DELETE', path, 'tenant-b')).status).toBe(404);
      const list = (await (await call('GET', '/wh/config', 'tenant-b')).json()) as unknown[];
      expect(list).toEqual([]);
      expect((await call('GET', path, 'tenant-a')).status).toBe(200);
    });

    it('When another tenant posts the same datasource and event, then it gets a hook of its own and the first is untouched', async () => {
      const a = await create('tenant-c', { datasource: 'stripe', event: 'charge', tsField: 'created' });
      const b = await create('tenant-d', { datasource: 'stripe', event: 'charge', tsField: '' });
      expect(b.token).not.toBe(a.token);
      const again = await (await call('GET', `/wh/config/${String(a.token)}`, 'tenant-c')).json();
      expect(again).toEqual(a);
    });
  });

  describe('authentication', () => {
    const expect401 = async (headers: Record<string, string>) => {
      const res = await fetch(`${app.url}/wh/config`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ type: 'urn:hookbus:problem:unauthorized', title: 'Unauthorized', status: 401 });
      return body.detail;
    };

    it('When there is no token, then 401', async () => {
      expect(await expect401({})).toBe('A bearer token is required.');
      expect(await expect401({ Authorization: 'Basic dXNlcjpwYXNz' })).toBe('A bearer token is required.');
    });

    it('When the token is unsigned (alg none), then 401', async () => {
      const unsigned = jwt.sign({ tenantId: 't1' }, '', { algorithm: 'none' });
      expect(await expect401({ Authorization: `Bearer ${unsigned}` })).toBe(
        'The token is not signed with an accepted algorithm.',
      );
    });

    it('When the token is signed with another key, then 401', async () => {
      const forged = jwt.sign({ tenantId: 't1' }, 'some-other-secret');
      expect(await expect401({ Authorization: `Bearer ${forged}` })).toBe('The token is not valid.');
    });

    it('When the token is signed with an algorithm outside JWT_ALGORITHMS, then 401', async () => {
      const hs512 = jwt.sign({ tenantId: 't1' }, TEST_JWT_SECRET, { algorithm: 'HS512' });
      expect(await expect401({ Authorization: `Bearer ${hs512}` })).toBe(
        'The token is not signed with an accepted algorithm.',
      );
    });

    it('When the token has expired, then 401', async () => {
      const expired = jwt.sign({ tenantId: 't1', exp: Math.floor(Date.now() / 1000) - 10 }, TEST_JWT_SECRET);
      expect(await expect401({ Authorization: `Bearer ${expired}` })).toBe('The token has expired.');
    });

    it.each([
      ['no tenant claim', { tenantId: undefined }],
      ['a tenant with a dot', { tenantId: 'a.b' }],
      ['a tenant with a wildcard', { tenantId: 'a*' }],
      ['a tenant of 65 characters', { tenantId: 'x'.repeat(65) }],
      ['an object as tenant', { tenantId: { id: 1 } }],
    ])('When the token has %s, then 401', async (_what, claims) => {
      const token = jwt.sign(claims, TEST_JWT_SECRET);
      expect(await expect401({ Authorization: `Bearer ${token}` })).toMatch(/tenantId claim must be/);
    });
  });

  describe('validation', () => {
    const expect400 = async (body: unknown, path: string) => {
      const res = await call('POST', '/wh/config', 't-valid', body);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      const problem = (await res.json()) as { type: string; status: number; errors: { path: string }[] };
      expect(problem).toMatchObject({
        type: 'urn:hookbus:problem:validation-error',
        title: 'Invalid request',
        status: 400,
      });
      expect(problem.errors.map((e) => e.path)).toContain(path);
      return problem;
    };

    it.each([
      ['a dot in datasource', { datasource: 'git.hub', event: 'push' }, 'datasource'],
      ['a * in datasource', { datasource: 'git*', event: 'push' }, 'datasource'],
      ['a # in event', { datasource: 'github', event: 'pu#sh' }, 'event'],
      ['a datasource of 65 characters', { datasource: 'd'.repeat(65), event: 'push' }, 'datasource'],
      ['an empty event', { datasource: 'github', event: '' }, 'event'],
      ['a number as datasource', { datasource: 42, event: 'push' }, 'datasource'],
      ['no event', { datasource: 'github' }, 'event'],
      ['an unknown field', { datasource: 'github', event: 'push', colour: 'red' }, 'colour'],
      ['a bad tsField', { datasource: 'github', event: 'push', tsField: 'a..b' }, 'tsField'],
      ['a number as tsField', { datasource: 'github', event: 'push', tsField: 5 }, 'tsField'],
      ['event * without eventFrom', { datasource: 'github', event: '*' }, 'eventFrom'],
      [
        'eventFrom without event *',
        { datasource: 'github', event: 'push', eventFrom: { header: 'x-github-event' } },
        'eventFrom',
      ],
      [
        'eventFrom with both',
        { datasource: 'github', event: '*', eventFrom: { header: 'x', field: 'y' } },
        'eventFrom',
      ],
      [
        'an unknown verify scheme',
        { datasource: 'github', event: 'push', verify: { scheme: 'md5', secret: 'xxxxxxxx' } },
        'verify.scheme',
      ],
      [
        'a short verify secret',
        { datasource: 'github', event: 'push', verify: { scheme: 'github', secret: 'x' } },
        'verify.secret',
      ],
      [
        'hmac-sha256 without a header',
        { datasource: 'a', event: 'b', verify: { scheme: 'hmac-sha256', secret: 'xxxxxxxx' } },
        'verify.header',
      ],
    ])('When the body has %s, then 400 naming the field', async (_what, body, path) => {
      await expect400(body, path);
    });

    it('When the body is not JSON, then 400', async () => {
      const res = await call('POST', '/wh/config', 't-valid', '{"datasource": ');
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ type: 'urn:hookbus:problem:invalid-json', status: 400 });
    });

    it('When the body is JSON but not an object, then 400', async () => {
      await expect400('[1,2]', '(body)');
    });
  });
});

describe('the hook config API with issuer, audience and an RS256 key', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  let app: App;

  beforeAll(async () => {
    app = await startTestApp({
      HOOKBUS_ROLES: 'api',
      JWT_ALGORITHMS: 'RS256,HS256',
      JWT_PUBLIC_KEY: publicPem,
      JWT_ISSUER: 'https://sts.example.com',
      JWT_AUDIENCE: 'hookbus',
    });
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
  });

  const statusWith = async (token: string) =>
    (await fetch(`${app.url}/wh/config`, { headers: { Authorization: `Bearer ${token}` } })).status;
  const claims = { tenantId: 't1', iss: 'https://sts.example.com', aud: 'hookbus' };

  it('When the token is RS256 with the right issuer and audience, then it is accepted', async () => {
    expect(await statusWith(jwt.sign(claims, privateKey, { algorithm: 'RS256' }))).toBe(200);
    expect(await statusWith(jwt.sign(claims, TEST_JWT_SECRET, { algorithm: 'HS256' }))).toBe(200);
  });

  it('When the issuer or the audience is wrong or missing, then 401', async () => {
    expect(await statusWith(jwt.sign({ ...claims, iss: 'https://evil' }, privateKey, { algorithm: 'RS256' }))).toBe(
      401,
    );
    expect(await statusWith(jwt.sign({ ...claims, aud: 'other' }, privateKey, { algorithm: 'RS256' }))).toBe(401);
    expect(await statusWith(jwt.sign({ tenantId: 't1' }, privateKey, { algorithm: 'RS256' }))).toBe(401);
  });

  it('When an HS256 token is signed with the public key as its secret (algorithm confusion), then 401', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ ...claims, exp: Math.floor(Date.now() / 1000) + 60 })).toString(
      'base64url',
    );
    const { createHmac } = await import('node:crypto');
    const signature = createHmac('sha256', publicPem).update(`${header}.${payload}`).digest('base64url');
    expect(await statusWith(`${header}.${payload}.${signature}`)).toBe(401);
  });
});
