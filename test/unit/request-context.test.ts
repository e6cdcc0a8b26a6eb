import { describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { loggablePath, requestIdOf } from '../../src/http/request-context.js';

describe('what a log line may show of a request', () => {
  it.each([
    ['/wh/0b6c0d7e-1f1e-4c1e-9c55-5d3f0a1b2c3d/ab12cd34', '/wh/:apiToken/:token'],
    ['/wh/config/ab12cd34ef?x=1', '/wh/config/:token'],
    ['/wh/config', '/wh/config'],
    ['/api/webhooks?cursor=abc', '/api/webhooks'],
    ['/readyz', '/readyz'],
  ])('When the path is %s, then the log shows %s', (url, shown) => {
    expect(loggablePath(url)).toBe(shown);
  });

  it('When the caller sends a sane X-Request-Id, then it is kept; otherwise a UUID is made', () => {
    const req = (id?: string) => ({ headers: id === undefined ? {} : { 'x-request-id': id } }) as IncomingMessage;
    expect(requestIdOf(req('abc-123'))).toBe('abc-123');
    expect(requestIdOf(req('has spaces\nand newline'))).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdOf(req('x'.repeat(500)))).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdOf(req())).toMatch(/^[0-9a-f-]{36}$/);
  });
});
