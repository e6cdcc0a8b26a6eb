import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { bearer } from '../support/jwt.js';

const json = { 'content-type': 'application/json' };
type Sub = Record<string, unknown> & { id: string };

describe('the subscriptions API', () => {
  let app: App;
  const call = (method: string, path: string, tenant: string, body?: unknown, claims: Record<string, unknown> = {}) =>
    fetch(`${app.url}${path}`, {
      method,
      headers: { ...json, ...bearer(tenant, claims) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const create = async (tenant: string, body: Record<string, unknown>, claims: Record<string, unknown> = {}) => {
    const res = await call('POST', '/api/webhooks', tenant, body, claims);
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as Sub & { secret: string };
  };
  const base = { url: 'https://receiver.example.com/hooks', events: ['github.push'] };

  beforeAll(async () => {
    app = await startTestApp({ HOOKBUS_ROLES: 'api', DELIVERY_RETRY_SCHEDULE: '1s,2s,3s' });
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('When a custom header looks like a credential, then every answer masks it, and sending the mask back keeps the value', async () => {
    const sub = await create('t-masked', { ...base, headers: { 'X-Api-Key': 'k-123', 'X-Team': 'platform' } });
    const masked = { 'X-Api-Key': '[redacted]', 'X-Team': 'platform' };
    expect(sub.headers).toEqual(masked);
    const read = (await (await call('GET', `/api/webhooks/${sub.id}`, 't-masked')).json()) as Sub;
    expect(read.headers).toEqual(masked);
    const list = (await (await call('GET', '/api/webhooks', 't-masked')).json()) as { items: Sub[] };
    expect(list.items.find((i) => i.id === sub.id)!.headers).toEqual(masked);

    // A read-modify-write: the masked value goes back as it was read.
    const patched = await call('PATCH', `/api/webhooks/${sub.id}`, 't-masked', {
      headers: { ...(read.headers as Record<string, string>), 'X-Team': 'core' },
    });
    expect(patched.status).toBe(200);
    expect(((await patched.json()) as Sub).headers).toEqual({ ...masked, 'X-Team': 'core' });
    const stored = await app.db!.connection.collection('webhooks').findOne({ _id: sub.id as never });
    expect(stored!.headers).toEqual([
      { name: 'X-Api-Key', value: 'k-123' },
      { name: 'X-Team', value: 'core' },
    ]);
    // The mask of a header that has no stored value is refused.
    const unknown = await call('PATCH', `/api/webhooks/${sub.id}`, 't-masked', {
      headers: { 'X-Token': '[redacted]' },
    });
    expect(unknown.status).toBe(400);
  });

  it('When a subscription is created, then 201 with its fields, defaults and a whsec_ secret shown once', async () => {
    const sub = await create(
      't-sub',
      {
        ...base,
        name: 'CI',
        description: 'pushes to CI',
        events: ['github.push', 'github.*', 'UPDATE_SWITCH'],
        headers: { 'X-Team': 'platform' },
        auth: { basic: { username: 'ci', password: 'pa55word' } },
        retry: { maxAttempts: 2, timeoutMs: 500 },
      },
      { sub: 'alice' },
    );
    expect(sub).toMatchObject({
      name: 'CI',
      description: 'pushes to CI',
      url: base.url,
      events: ['github.push', 'github.*', 'UPDATE_SWITCH'],
      scope: 'tenant',
      filter: {},
      headers: { 'X-Team': 'platform' },
      auth: { type: 'basic', username: 'ci' },
      sslVerification: true,
      enabled: true,
      payload: 'envelope',
      retry: { maxAttempts: 2, timeoutMs: 500 },
      createdBy: 'alice',
      updatedBy: 'alice',
    });
    expect(sub.id).toMatch(/^wh_[0-9A-Z]{26}$/);
    expect(sub.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(sub.secret.slice(6), 'base64').length).toBeGreaterThanOrEqual(24);

    const read = await call('GET', `/api/webhooks/${sub.id}`, 't-sub');
    const text = await read.text();
    expect(read.status).toBe(200);
    expect(text).not.toContain(sub.secret);
    expect(text).not.toContain('pa55word');
    const { secret: _secret, ...withoutSecret } = sub;
    expect(JSON.parse(text)).toEqual(withoutSecret);
  });

  it('When the secret is read and rotated, then the new one is current and the old one is not returned', async () => {
    const sub = await create('t-sub', base);
    const shown = (await (await call('GET', `/api/webhooks/${sub.id}/secret`, 't-sub')).json()) as { secret: string };
    expect(shown.secret).toBe(sub.secret);
    const rotated = await call('POST', `/api/webhooks/${sub.id}/secret/rotate`, 't-sub');
    expect(rotated.status).toBe(200);
    const { secret } = (await rotated.json()) as { secret: string };
    expect(secret).toMatch(/^whsec_/);
    expect(secret).not.toBe(sub.secret);
    expect(
      ((await (await call('GET', `/api/webhooks/${sub.id}/secret`, 't-sub')).json()) as { secret: string }).secret,
    ).toBe(secret);
  });

  it('When a subscription is patched, then only the given fields change and null clears', async () => {
    const sub = await create('t-sub', {
      ...base,
      name: 'x',
      auth: { bearer: 'tok-123' },
      filter: { resourceKeyPattern: 'a/.*' },
    });
    const res = await call(
      'PATCH',
      `/api/webhooks/${sub.id}`,
      't-sub',
      { enabled: false, auth: null, events: ['*'], name: null },
      { sub: 'bob' },
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      enabled: false,
      auth: null,
      events: ['*'],
      name: null,
      filter: { resourceKeyPattern: 'a/.*' },
      url: base.url,
      createdBy: 't-sub',
      updatedBy: 'bob',
    });
  });

  it('When subscriptions are listed, then pages follow the cursor and filters apply', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await create('t-page', { ...base, events: [i % 2 ? 'odd.event' : 'even.event'] })).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await call('GET', `/api/webhooks?limit=2${cursor ? `&cursor=${cursor}` : ''}`, 't-page');
      const page = (await res.json()) as { items: Sub[]; nextCursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(ids);
    const odd = (await (await call('GET', '/api/webhooks?event=odd.event', 't-page')).json()) as { items: Sub[] };
    expect(odd.items.map((i) => i.id)).toEqual([ids[1], ids[3]]);
  });

  it('When a subscription is deleted, then 204 and it is gone', async () => {
    const sub = await create('t-sub', base);
    expect((await call('DELETE', `/api/webhooks/${sub.id}`, 't-sub')).status).toBe(204);
    expect((await call('GET', `/api/webhooks/${sub.id}`, 't-sub')).status).toBe(404);
    expect((await call('DELETE', `/api/webhooks/${sub.id}`, 't-sub')).status).toBe(404);
  });

  it('When another tenant reads, patches, deletes or reads the secret of a subscription, then 404', async () => {
    const sub = await create('t-owner', base);
    for (const [method, path] of [
      ['GET', `/api/webhooks/${sub.id}`],
      ['PATCH', `/api/webhooks/${sub.id}`],
      ['DELETE', `/api/webhooks/${sub.id}`],
      ['GET', `/api/webhooks/${sub.id}/secret`],
      ['POST', `/api/webhooks/${sub.id}/secret/rotate`],
    ] as const) {
      expect(
        (await call(method, path, 't-intruder', method === 'PATCH' ? { enabled: false } : undefined)).status,
        `${method} ${path}`,
      ).toBe(404);
    }
    expect(((await (await call('GET', '/api/webhooks', 't-intruder')).json()) as { items: unknown[] }).items).toEqual(
      [],
    );
  });

  it('When a non-admin asks for site scope, then 403; an admin may, and others never see it', async () => {
    const denied = await call('POST', '/api/webhooks', 't-site', { ...base, scope: 'site' });
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ type: 'urn:hookbus:problem:forbidden', status: 403 });
    const site = await create('t-site', { ...base, scope: 'site' }, { admin: true });
    expect(site.scope).toBe('site');
    expect((await call('GET', `/api/webhooks/${site.id}`, 't-site')).status).toBe(404);
    expect((await call('GET', `/api/webhooks/${site.id}`, 't-site', undefined, { admin: true })).status).toBe(200);
    expect((await call('GET', '/api/webhooks?scope=site', 't-site')).status).toBe(403);
    const plain = await create('t-site', base);
    expect((await call('PATCH', `/api/webhooks/${plain.id}`, 't-site', { scope: 'site' })).status).toBe(403);
  });

  describe('validation', () => {
    it.each([
      ['an ftp URL', { url: 'ftp://x.example.com/' }, 'url'],
      ['credentials in the URL', { url: 'https://u:p@x.example.com/' }, 'url'],
      ['no URL', { url: undefined }, 'url'],
      ['no events', { events: [] }, 'events'],
      ['a glob in the middle', { events: ['git*.push'] }, 'events.0'],
      ['an invalid regex', { filter: { resourceKeyPattern: '(a' } }, 'filter.resourceKeyPattern'],
      ['a backreference (not linear-time)', { filter: { resourceKeyPattern: '(a)\\1' } }, 'filter.resourceKeyPattern'],
      ['a Host header', { headers: { Host: 'evil' } }, 'headers.Host'],
      ['a webhook- header', { headers: { 'webhook-id': 'x' } }, 'headers.webhook-id'],
      ['an X-Hookbus- header', { headers: { 'X-Hookbus-Event': 'x' } }, 'headers.X-Hookbus-Event'],
      ['a hop-by-hop header', { headers: { 'Transfer-Encoding': 'chunked' } }, 'headers.Transfer-Encoding'],
      ['Authorization with auth', { headers: { Authorization: 'x' }, auth: { bearer: 't' } }, 'headers.Authorization'],
      ['a header value with a newline', { headers: { 'X-A': 'a\r\nX-B: b' } }, 'headers.X-A'],
      // An own `__proto__` key, as JSON.parse makes it (an object literal would set the prototype).
      ['a __proto__ header', { headers: JSON.parse('{"__proto__": "x", "X-A": "b"}') as unknown }, 'headers.__proto__'],
      ['an unknown auth kind', { auth: { digest: 'x' } }, 'auth'],
      ['too many attempts', { retry: { maxAttempts: 5 } }, 'retry.maxAttempts'],
      ['a longer timeout', { retry: { timeoutMs: 60_000 } }, 'retry.timeoutMs'],
      ['an unknown payload', { payload: 'xml' }, 'payload'],
      ['an unknown field', { colour: 'red' }, 'colour'],
    ])('When the body has %s, then 400 naming the field', async (_what, override, path) => {
      const res = await call('POST', '/api/webhooks', 't-valid', { ...base, ...override });
      expect(res.status).toBe(400);
      const problem = (await res.json()) as { type: string; errors: { path: string }[] };
      expect(problem.type).toBe('urn:hookbus:problem:validation-error');
      expect(problem.errors.map((e) => e.path)).toContain(path);
    });

    it('When Authorization is a custom header and auth is unset, then it is allowed', async () => {
      await create('t-valid', { ...base, headers: { Authorization: 'Token abc' } });
    });
  });
});

describe('the subscriptions API refusing internal targets (DELIVERY_ALLOW_PRIVATE_TARGETS=false)', () => {
  let app: App;
  // Each IPv6 form that carries an IPv4 address, carrying a loopback or metadata one.
  const embedded = [
    'http://[::7f00:1]/',
    'http://[::127.0.0.1]/',
    'http://[::ffff:7f00:1]/',
    'http://[::ffff:0:a9fe:a9fe]/',
    'http://[64:ff9b::7f00:1]/',
    'http://[2002:7f00:1::]/',
  ];
  const refusal = [{ path: 'url', message: 'must not point at a private or internal address' }];
  beforeAll(async () => {
    app = await startTestApp({ HOOKBUS_ROLES: 'api', DELIVERY_ALLOW_PRIVATE_TARGETS: 'false' });
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it.each([
    'http://127.0.0.1:8080/',
    'http://localhost/',
    'http://10.1.2.3/',
    'http://172.16.0.1/',
    'http://192.168.1.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.64.0.1/',
    'http://[::1]/',
    'http://[fd00::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://224.0.0.1/',
    'http://0.0.0.0/',
    ...embedded,
  ])('When the URL is %s, then 400 naming url', async (url) => {
    const res = await fetch(`${app.url}/api/webhooks`, {
      method: 'POST',
      headers: { ...json, ...bearer('t-ssrf') },
      body: JSON.stringify({ url, events: ['*'] }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { path: string; message: string }[] }).errors).toEqual(refusal);
  });

  it('When the URL is a public address, then it is accepted', async () => {
    const res = await fetch(`${app.url}/api/webhooks`, {
      method: 'POST',
      headers: { ...json, ...bearer('t-ssrf') },
      body: JSON.stringify({ url: 'https://93.184.215.14/hook', events: ['*'] }),
    });
    expect(res.status).toBe(201);
  });

  it.each(embedded)(
    'When a subscription is updated to the URL %s, then 400 naming url and it is unchanged',
    async (url) => {
      const headers = { ...json, ...bearer('t-ssrf') };
      const created = await fetch(`${app.url}/api/webhooks`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ url: 'https://93.184.215.14/hook', events: ['*'] }),
      });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as Sub;
      const res = await fetch(`${app.url}/api/webhooks/${id}`, {
        method: 'PATCH',
        headers,
        body: JSON.stringify({ url }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { errors: unknown[] }).errors).toEqual(refusal);
      const read = await fetch(`${app.url}/api/webhooks/${id}`, { headers });
      expect(((await read.json()) as Sub).url).toBe('https://93.184.215.14/hook');
    },
  );

  it.each(['http://[64:ff9b::808:808]/', 'http://[2002:808:808::1]/'])(
    'When the URL is %s, carrying a public IPv4 address, then it is accepted',
    async (url) => {
      const res = await fetch(`${app.url}/api/webhooks`, {
        method: 'POST',
        headers: { ...json, ...bearer('t-ssrf') },
        body: JSON.stringify({ url, events: ['*'] }),
      });
      expect(res.status).toBe(201);
    },
  );
});

/** Patterns over each limit, with the error that names it. */
const OVER_LIMITS: [string, string, string][] = [
  [
    'the finding of issue #11, (?:a?){999} ten times',
    '(?:a?){999}'.repeat(10),
    'repeats more than 100 times ({n,m} counts, multiplied when nested, above 100)',
  ],
  ['257 characters', `[${'a'.repeat(255)}]`, 'must be at most 256 characters'],
  ['a program over 64 instructions', '(?:a*){32}', 'compiles to more than 64 instructions'],
];

describe('the subscriptions API bounding resource key patterns', () => {
  let app: App;
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${app.url}${path}`, {
      method,
      headers: { ...json, ...bearer('t-pattern') },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const base = { url: 'https://receiver.example.com/hooks', events: ['github.push'] };
  const typical = '^acme/(?:api|web|worker)/[0-9]+$';

  beforeAll(async () => {
    app = await startTestApp({ HOOKBUS_ROLES: 'api' });
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it.each(OVER_LIMITS)(
    'When a subscription is created with %s, then 400 naming the limit; a typical pattern is accepted',
    async (_what, pattern, message) => {
      const res = await call('POST', '/api/webhooks', { ...base, filter: { resourceKeyPattern: pattern } });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as { type: string; errors: unknown[] };
      expect(problem.type).toBe('urn:hookbus:problem:validation-error');
      expect(problem.errors).toEqual([{ path: 'filter.resourceKeyPattern', message }]);

      const created = await call('POST', '/api/webhooks', { ...base, filter: { resourceKeyPattern: typical } });
      expect(created.status).toBe(201);
      expect(((await created.json()) as Sub).filter).toEqual({ resourceKeyPattern: typical });
    },
  );

  it.each(OVER_LIMITS)(
    'When a subscription is patched to %s, then 400 naming the limit and the pattern is unchanged',
    async (_what, pattern, message) => {
      const created = await call('POST', '/api/webhooks', { ...base, filter: { resourceKeyPattern: 'acme/.*' } });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as Sub;

      const res = await call('PATCH', `/api/webhooks/${id}`, { filter: { resourceKeyPattern: pattern } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { errors: unknown[] }).errors).toEqual([
        { path: 'filter.resourceKeyPattern', message },
      ]);
      expect(((await (await call('GET', `/api/webhooks/${id}`)).json()) as Sub).filter).toEqual({
        resourceKeyPattern: 'acme/.*',
      });

      const patched = await call('PATCH', `/api/webhooks/${id}`, { filter: { resourceKeyPattern: typical } });
      expect(patched.status).toBe(200);
      expect(((await patched.json()) as Sub).filter).toEqual({ resourceKeyPattern: typical });
    },
  );
});
