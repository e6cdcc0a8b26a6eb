import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loggablePath } from '../../src/http/request-context.js';

const A = '0b6c0d7e-1f1e-4c1e-9c55-5d3f0a1b2c3d';
const T = 'f8b1e5e78391e4837739e37c9eade522dbef6289';

describe('how a log line shows a path that may hold hook tokens', () => {
  it.each([
    ['/wh/<apiToken>/<token>', '/wh/:apiToken/:token'],
    ['/wh/<apiToken>/<token>/', '/wh/:apiToken/:token/'],
    ['/wh/<apiToken>/<token>?x=1', '/wh/:apiToken/:token'],
    ['/wh/<apiToken>/<token>#x', '/wh/:apiToken/:token'],
    // The four spellings of issue #12, which logged both tokens.
    ['//wh/<apiToken>/<token>', '//wh/:apiToken/:token'],
    ['/wh//<apiToken>/<token>', '/wh//:apiToken/:token'],
    ['/WH/<apiToken>/<token>', '/WH/:apiToken/:token'],
    ['/%77h/<apiToken>/<token>', '/%77h/:apiToken/:token'],
    ['/%57H/<apiToken>/<token>', '/%57H/:apiToken/:token'],
    ['/%2577h/<apiToken>/<token>', '/%2577h/:apiToken/:token'],
    ['/wh/<apiToken>//<token>//', '/wh/:apiToken//:token//'],
    ['/wh/%30<apiToken-1>/%66<token-1>', '/wh/:apiToken/:token'],
    ['/x/../wh/<apiToken>/<token>', '/x/../wh/:apiToken/:token'],
    ['/wh/./<apiToken>/%2e%2e/<token>', '/wh/./:apiToken/%2e%2e/:token'],
    ['/hookbus/wh/<apiToken>/<token>', '/hookbus/wh/:apiToken/:token'],
    ['http://localhost:3000/wh/<apiToken>/<token>', 'http://localhost:3000/wh/:apiToken/:token'],
    ['/wh/<apiToken>/<token>/<token>', '/wh/:apiToken/:token/[redacted]'],
    ['/wh/<apiToken>', '/wh/:apiToken'],
    ['/wh%2F<apiToken>%2F<token>', '/wh/[redacted]'],
    ['/wh\\<apiToken>\\<token>', '/wh/[redacted]'],
    ['/wh;x=1/<apiToken>/<token>', '/wh/[redacted]'],
    ['/%2525252525252577h/<apiToken>/<token>', '/[redacted]'],
    ['/wh', '/wh'],
    ['/wh/config', '/wh/config'],
    ['/wh/config/<token>', '/wh/config/:token'],
    ['/WH/CONFIG/<token>/', '/WH/CONFIG/:token/'],
    ['/wh/%63onfig/<token>', '/wh/%63onfig/:token'],
    ['/wh/config/%ZZ<token>', '/wh/config/:token'],
    ['/wh/config/<token>/<apiToken>', '/wh/config/:token/[redacted]'],
    ['/api/webhooks/wh_1?cursor=abc', '/api/webhooks/wh_1'],
    ['/readyz', '/readyz'],
    ['', ''],
  ])('When the request target is %s, then the log shows %s', (target, shown) => {
    const url = target
      .replaceAll('<apiToken-1>', A.slice(1))
      .replaceAll('<token-1>', T.slice(1))
      .replaceAll('<apiToken>', A)
      .replaceAll('<token>', T);
    expect(loggablePath(url)).toBe(shown);
  });

  it('When a hook URL is spelled with any case, escapes, slashes, dot segments, prefix or suffix, then no part of its tokens is shown', () => {
    const hex = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 8, maxLength: 40 });
    /** A character as sent: itself, escaped, or escaped twice; letters in either case. */
    const spelt = (char: string) =>
      fc.tuple(fc.boolean(), fc.constantFrom(0, 1, 2)).map(([upper, depth]) => {
        const c = upper ? char.toUpperCase() : char;
        if (depth === 0) return c;
        const escaped = `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
        return depth === 1 ? escaped : escaped.replace('%', '%25');
      });
    const word = (text: string) => fc.tuple(...[...text].map(spelt)).map((chars) => chars.join(''));
    const slashes = fc.constantFrom('/', '//', '///');
    const target = fc
      .record({
        prefix: fc.constantFrom('', '/x/..', '/.', 'http://localhost', '/api'),
        s1: slashes,
        wh: word('wh'),
        s2: slashes,
        apiToken: hex.chain(word),
        s3: slashes,
        token: hex.chain(word),
        suffix: fc.constantFrom('', '/', '//', '/more', '?x=1', '/?x=1', '#x'),
      })
      .map((p) => `${p.prefix}${p.s1}${p.wh}${p.s2}${p.apiToken}${p.s3}${p.token}${p.suffix}`);

    fc.assert(
      fc.property(target, (url) => {
        const shown = loggablePath(url);
        // Any six hex digits in a row would be a piece of a token.
        expect(shown).not.toMatch(/[0-9a-f]{6}/i);
        expect(shown).toMatch(/:apiToken\/+:token|\/wh\/\[redacted\]$/);
      }),
      { numRuns: 2000 },
    );
  });
});
