import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import { CompiledSubscription, SubscriptionCache } from '../../src/dispatch/matching.js';
import { createLogger } from '../../src/logger.js';
import type { SubscriptionModel, SubscriptionRecord } from '../../src/webhooks/model.js';
import {
  compileResourceKeyPattern,
  MAX_FOLDED_RANGE_RUNES,
  MAX_PATTERN_LENGTH,
  MAX_PROGRAM_SIZE,
  MAX_REPEAT,
  MAX_RESOURCE_KEY_LENGTH,
  MAX_UNICODE_CLASSES,
  ResourceKeyPatternError,
} from '../../src/webhooks/resource-key-pattern.js';

/** The pattern of issue #11: accepted before, it blocked the event loop for seconds per match. */
const FINDING = '(?:a?){999}'.repeat(10);
const refusal = (pattern: string) => {
  try {
    compileResourceKeyPattern(pattern);
  } catch (error) {
    expect(error).toBeInstanceOf(ResourceKeyPatternError);
    return (error as Error).message;
  }
  return undefined;
};

describe('resource key pattern limits', () => {
  it('When the limits are read, then they are the documented ones', () => {
    expect({
      MAX_PATTERN_LENGTH,
      MAX_REPEAT,
      MAX_PROGRAM_SIZE,
      MAX_RESOURCE_KEY_LENGTH,
      MAX_UNICODE_CLASSES,
      MAX_FOLDED_RANGE_RUNES,
    }).toEqual({
      MAX_PATTERN_LENGTH: 256,
      MAX_REPEAT: 100,
      MAX_PROGRAM_SIZE: 64,
      MAX_RESOURCE_KEY_LENGTH: 256,
      MAX_UNICODE_CLASSES: 16,
      MAX_FOLDED_RANGE_RUNES: 4096,
    });
  });

  it('When a pattern is longer than 256 characters, then it is refused naming the length', () => {
    const longest = `[${'a'.repeat(MAX_PATTERN_LENGTH - 2)}]`;
    expect(refusal(longest)).toBeUndefined();
    expect(refusal(`${longest}?`)).toBe('must be at most 256 characters');
  });

  it.each([
    ['the finding of issue #11', FINDING],
    ['one count above 100', 'a{101}'],
    ['a range reaching above 100', 'a{2,101}'],
    ['nested counts multiplying above 100', '(?:(?:a{2}){6}b){9}'],
    ['counts of something empty', '(?:){1000}'],
  ])('When a pattern has %s, then it is refused naming the repetition limit', (_what, pattern) => {
    expect(refusal(pattern)).toBe('repeats more than 100 times ({n,m} counts, multiplied when nested, above 100)');
  });

  it.each([
    ['more elements than instructions allowed (checked before compiling)', 'a{100}'],
    ['nested counts of 100 in all', '(?:(?:[a-z]{10}){10})'],
    ['65 characters', 'x'.repeat(65)],
    ['loops past the limit (checked after compiling)', '(?:a*){32}'],
    ['alternatives past the limit', '(?:alpha|bravo|charlie|delta|echo|foxtrot|golf|hotel|india|juliett|kilo|lima)'],
  ])('When a pattern has %s, then it is refused naming the program size', (_what, pattern) => {
    expect(refusal(pattern)).toBe('compiles to more than 64 instructions');
  });

  it.each([
    ['17 of them', `(?i)${'\\pL'.repeat(17)}`],
    ['17 in one class', `[${'\\p{Lu}'.repeat(16)}\\PL]`],
    ['17 of them in and out of classes', `${'\\p{Greek}'.repeat(9)}[${'\\P{Ll}'.repeat(8)}]`],
  ])('When a pattern has more than 16 Unicode classes (%s), then it is refused naming the limit', (_what, pattern) => {
    expect(refusal(pattern)).toBe('has more than 16 Unicode classes (\\p{..} or \\P{..})');
    expect(refusal(pattern.replace(/\\[pP](\{\w+\}|L)/, ''))).toBeUndefined();
  });

  it.each([
    ['one wide range', '(?i)[B-\\x{1E942}]'],
    ['4,097 runes', '(?i)[\\x{100}-\\x{1100}]'],
    ['ranges adding up to 4,097', `(?i)${'[Ā-ǿ]'.repeat(16)}[\\x{1}-\\x{41}]`],
    ['a range in hex, octal and literal ends', '(?i)[\\x41-ÿ\\101-\\x{3000}]'],
    ['a negated class', '(?i)[^\\x{4e00}-\\x{9fff}]'],
    ['(?i) in a group around it', '(?i:x[\\x{4e00}-\\x{9fff}])'],
    ['(?i) in flags of several', '(?si-m)[\\x{4e00}-\\x{9fff}]'],
    ['(?i) before an alternative', '(?i)a|[\\x{4e00}-\\x{9fff}]'],
    ['(?i) before a group', '(?i)(?:a(b[\\x{4e00}-\\x{9fff}]))'],
  ])('When a pattern case-folds %s, then it is refused before compiling', (_what, pattern) => {
    expect(refusal(pattern)).toBe('case-folds more than 4096 characters in class ranges under (?i)');
  });

  it.each([
    ['4,096 runes', '(?i)[\\x{100}-\\x{10FF}]'],
    ['no (?i)', '[B-\\x{1E942}]'],
    ['a range re2js does not fold (all of U+0041 to U+1E943)', '(?i)[\\x{41}-\\x{10FFFF}]'],
    ['(?i) cleared', '(?i)(?-i:[\\x{4e00}-\\x{9fff}])'],
    ['(?i) cleared in the same flags', '(?i-i)[\\x{4e00}-\\x{9fff}]'],
    ['(?i) in a group before it', '(?:(?i)a)[\\x{4e00}-\\x{9fff}]'],
    ['(?i) in a group of its own', '(?i:a)[\\x{4e00}-\\x{9fff}]'],
    ['the range quoted', '(?i)\\Q[B-\\x{1E942}]\\E'],
    ['(?i) quoted', '\\Q(?i)\\E[\\x{4e00}-\\x{9fff}]'],
    ['16 Unicode classes', `(?i)[${'\\p{Ll}'.repeat(16)}]`],
    ['POSIX and Perl classes', `(?i)[${'[:word:]\\w\\W'.repeat(18)}]`],
  ])('When a pattern has %s, then its classes are accepted', (_what, pattern) => {
    expect(refusal(pattern)).toBeUndefined();
  });

  it('When a pattern would take re2js long to compile, then the checks before compiling refuse it', () => {
    // re2js takes ~390 ms to compile the first (~18 ms each range); \pL 63 times under (?i), 20-70 ms.
    // Refused by a check on the text, so compiling never starts (bench:patterns times both).
    expect(refusal(`(?i)${'[B-\\x{1E942}]'.repeat(15)}`)).toMatch(/^case-folds more than \d+ characters/);
    expect(refusal(`(?i)${'\\pL'.repeat(63)}`)).toMatch(/^has more than \d+ Unicode classes/);
  });

  it('When a pattern is not RE2 syntax, then the message says so with re2js reason', () => {
    expect(refusal('(a')).toMatch(/^is not a valid regular expression: .*missing closing \)/);
    expect(refusal('(a)\\1')).toMatch(/^is not a valid regular expression: /);
  });

  it.each([
    ['a/.*', 'a/b/c'],
    ['^[a-z0-9/]+$', 'acme/widgets'],
    ['^acme/(?:api|web|worker)/[0-9]+$', 'acme/web/42'],
    ['^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', '0b6c0d7e-1f1e-4c1e-9c55-5d3f0a1b2c3d'],
    ['^tenants/acme/sites/[^/]+/devices/.*$', 'tenants/acme/sites/s-1/devices/d-9'],
    ['org/(acme|globex|initech)/repos/[^/]+/branches/(main|release-.*)', 'org/globex/repos/x/branches/release-2'],
    ['(?i)^github\\.com/acme-corp/[a-z0-9._-]+$', 'GitHub.com/ACME-corp/widgets'],
    ['(?:a*){31}', 'aaaa'],
    ['a{62}', 'a'.repeat(62)],
  ])('When a typical pattern %s is compiled, then it is accepted and matches %s', (pattern, key) => {
    const compiled = compileResourceKeyPattern(pattern);
    expect(compiled.programSize).toBeLessThanOrEqual(MAX_PROGRAM_SIZE);
    expect(compiled.matches(key)).toBe(true);
    expect(compiled.matches(`${key}\n`)).toBe(false);
  });
});

describe('resource key matching', () => {
  it('When a key is longer than MAX_RESOURCE_KEY_LENGTH, then no pattern matches it', () => {
    const any = compileResourceKeyPattern('(?s).*');
    expect(any.matches('a'.repeat(MAX_RESOURCE_KEY_LENGTH))).toBe(true);
    expect(any.matches('a'.repeat(MAX_RESOURCE_KEY_LENGTH + 1))).toBe(false);
  });

  it.each([
    ['acct-[0-9]+', 'acct-12', true],
    ['acct-[0-9]+', 'xacct-12', false],
    ['acct-[0-9]+', 'acct-12x', false],
    ['', '', true],
    ['a*', '', true],
    ['(?i)k', '\u212a', true],
    ['(?i)s', '\u017f', true],
    ['(?i)ж+', 'ЖжЖ', true],
    ['\\bab\\b', 'ab', true],
    ['a\\bb', 'ab', false],
    ['a\\Bb', 'ab', true],
    ['(?m)a$\\n^b', 'a\nb', true],
    ['a$\\nb', 'a\nb', false],
    ['.', '😀', true],
    ['..', '😀', false],
    ['.', '\n', false],
    ['(?s).', '\n', true],
    ['[^a]', '\ud800', true],
    ['\\p{Greek}+', 'αβγ', true],
    ['[[:alpha:]]+\\d', 'abc1', true],
    // Case-folding orbits of 3 and 4 runes.
    ['(?i)θ+', 'θϑϴΘ', true],
    ['(?i)ϴ', 'ϑ', true],
    ['(?i)θ', 'ο', false],
    ['θ', 'ϑ', false],
    ['(?i:θ)θ', 'ϴθ', true],
    ['(?i:θ)θ', 'ϴϴ', false],
    ['(?i)[θ]', 'ϑ', true],
    ['(?i)\u212a+', 'kK\u212a', true],
    ['(?i)k', 'ķ', false],
    ['(?i)ſ+', 'sSſ', true],
    ['(?i)s', 'ś', false],
    ['(?i)µ+', 'µμΜ', true],
    ['(?i)σ+', 'σςΣ', true],
    ['(?i)ß+', 'ßẞ', true],
    ['(?i)ß', 'ss', false],
    ['(?i)ǆ+', 'Ǆǅǆ', true],
    ['(?i)ι+', '\u0345\u0399\u03b9\u1fbe', true],
    ['(?i)𐐀', '𐐨', true],
    // Classes large enough for a bitmap, below and above the BMP.
    ['[\\p{Ll}\\p{Lo}\\p{Mn}\\p{So}\\p{Pe}\\p{Po}]+', '!ж\u{1000d}😀', true],
    ['\\p{Lu}', 'ж', false],
    ['(?i)\\p{Lu}', 'ж', true],
    ['\\p{Lu}', '𐐀', true],
    ['\\PL', '\u{1000d}', false],
  ])('When %s meets %j, then matches is %s, as in re2js', (pattern, key, expected) => {
    expect(compileResourceKeyPattern(pattern).matches(key)).toBe(expected);
    expect(RE2JS.compile(pattern).matcher(key).matches()).toBe(expected);
  });

  it('When random patterns meet random keys, then every answer is re2js Matcher.matches() answer', () => {
    differential({
      seed: 11,
      atoms: [
        'a',
        'b',
        'k',
        'ab',
        'ж',
        '😀',
        '.',
        '[a-c]',
        '[^a]',
        '\\d',
        '\\w',
        '\\s',
        '\\pL',
        '\\b',
        '\\B',
        '^',
        '$',
        '\\A',
        '\\z',
        '-',
        '\\n',
      ],
      keyChars: ['a', 'a', 'b', 'k', 'K', '\u212a', 'ж', 'Ж', '😀', '\n', ' ', '1', '-', '_', '\ud800'],
    });
  });

  it('When random case-folded patterns meet keys of their orbits, then every answer is re2js answer', () => {
    differential({
      seed: 12,
      atoms: [...'θϑkKsſµΜσςßẞǆǄι\u1fbe𐐀', '\\x{212a}', '[θs]', '[^ϑ]', '\\p{Lu}', '[\\p{Ll}\\p{Mn}]', '\\PL', '.'],
      keyChars: [...'θϑϴΘkK\u212aꝁsSſśµμΜσςΣßẞǄǅǆ\u0345\u0399\u03b9\u1fbe𐐀𐐨a1-'],
      caseFolded: true,
    });
  });

  it('When each rune of the longer orbits meets each other, then every answer is re2js answer', () => {
    const runes = [...'θϑϴΘkK\u212asSſµμΜσςΣßẞǄǅǆ\u0345\u0399\u03b9\u1fbeåÅ\u212bɛƐϵΕε'];
    for (const pattern of runes.flatMap((rune) => [`(?i)${rune}`, `(?i)[${rune}]`, rune])) {
      const ours = compileResourceKeyPattern(pattern);
      const theirs = RE2JS.compile(pattern);
      for (const key of runes) expect(ours.matches(key), `${pattern} on ${key}`).toBe(theirs.matcher(key).matches());
    }
  });

  it('When large classes meet every rune of the BMP and some above, then every answer is re2js answer', () => {
    const keys = Array.from({ length: 0x10000 }, (_, rune) => rune);
    for (let rune = 0x10000; rune <= 0x10ffff; rune += 0x3f1) keys.push(rune);
    for (const pattern of ['[\\p{Ll}\\p{Lo}\\p{Mn}\\p{So}\\p{Pe}\\p{Po}]', '(?i)\\p{Lu}', '\\PL']) {
      const ours = compileResourceKeyPattern(pattern);
      // re2js's own instruction, to compare without building a matcher per key.
      const inst = (
        RE2JS.compile(pattern).re2() as { prog: { inst: { op: number; matchRune(rune: number): boolean }[] } }
      ).prog.inst.find((instruction) => instruction.op === 8);
      const wrong = keys.filter((rune) => ours.matches(String.fromCodePoint(rune)) !== inst?.matchRune(rune));
      expect(wrong, pattern).toEqual([]);
    }
  });
});

/** Random patterns from `atoms` against random keys from `keyChars`: ours and re2js's answers. */
function differential(options: { seed: number; atoms: string[]; keyChars: string[]; caseFolded?: boolean }) {
  const random = mulberry32(options.seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T;
  const flags = options.caseFolded ? ['(?i)', '(?i)', '(?-i)', ''] : ['(?i)', '(?s)', '(?m)', ''];
  const pattern = (depth: number): string => {
    const choice = Math.floor(random() * (depth > 2 ? 2 : 6));
    if (choice <= 1) return pick(options.atoms);
    if (choice === 2) return pattern(depth + 1) + pattern(depth + 1);
    if (choice === 3) return `(${pick(['', '?:', '?i:', '?s:', '?m:'])}${pattern(depth + 1)}|${pattern(depth + 1)})`;
    if (choice === 4) return `(?:${pattern(depth + 1)})${pick(['*', '+', '?', '*?', '{2}', '{1,3}', '{2,}'])}`;
    return `${pick(flags)}${pattern(depth + 1)}`;
  };
  let compared = 0;
  let matched = 0;
  for (let p = 0; p < 1500; p++) {
    const source = `${options.caseFolded ? '(?i)' : ''}${pattern(0)}`;
    const ours = compileResourceKeyPattern(source);
    const theirs = RE2JS.compile(source);
    for (let k = 0; k < 20; k++) {
      const key = Array.from({ length: Math.floor(random() * 7) }, () => pick(options.keyChars)).join('');
      const expected = theirs.matcher(key).matches();
      expect(ours.matches(key), `${source} on ${JSON.stringify(key)}`).toBe(expected);
      compared++;
      if (expected) matched++;
    }
  }
  // Enough of both answers for the comparison to mean something.
  expect(matched).toBeGreaterThan(compared / 20);
  expect(matched).toBeLessThan(compared / 2);
}

describe('stored patterns beyond the limits', () => {
  const record = (pattern: string): SubscriptionRecord => ({
    _id: 'wh_old',
    tenantId: 't1',
    name: null,
    description: null,
    url: 'https://example.com/hook',
    events: ['*'],
    scope: 'tenant',
    filter: { resourceKeyPattern: pattern },
    headers: [],
    auth: null,
    sslVerification: true,
    enabled: true,
    payload: 'envelope',
    retry: {},
    secrets: [],
    createdAt: new Date(),
    createdBy: 'a',
    updatedAt: new Date(),
    updatedBy: 'a',
  });
  const input = { tenantId: 't1', event: 'github.push' };

  it('When a stored pattern breaks the limits, then it matches nothing, not even keys it would match', () => {
    const stored = new CompiledSubscription(record(FINDING));
    expect(stored.patternRefused).toMatch(/^repeats more than 100 times/);
    expect(stored.matches({ ...input, resourceKey: 'a' })).toBe(false);
    expect(stored.matches({ ...input, resourceKey: 'a'.repeat(1024) })).toBe(false);
  });

  it('When a key is longer than MAX_RESOURCE_KEY_LENGTH, then a subscription with a pattern does not take it', () => {
    const keyed = new CompiledSubscription(record('a*'));
    expect(keyed.matches({ ...input, resourceKey: 'a'.repeat(MAX_RESOURCE_KEY_LENGTH) })).toBe(true);
    expect(keyed.matches({ ...input, resourceKey: 'a'.repeat(MAX_RESOURCE_KEY_LENGTH + 1) })).toBe(false);
  });

  it('When a refused pattern is loaded, reloaded and matched many times, then one warning is logged', async () => {
    const lines: { level: number; msg: string; id?: string; reason?: string }[] = [];
    const logger = createLogger('info', {
      write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]),
    });
    const records = [record(FINDING)];
    const model = {
      db: { readyState: 1 },
      find: () => ({ lean: async () => records }),
      findById: () => ({ lean: async () => records[0] }),
    } as unknown as SubscriptionModel;
    const cache = new SubscriptionCache(model, logger);
    try {
      await cache.ready();
      for (let i = 0; i < 100; i++) expect(cache.match({ ...input, resourceKey: 'a' })).toEqual([]);
      cache.onResync();
      await cache.ready();
      cache.onMessage({ kind: 'subscription.changed', id: 'wh_old' });
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(cache.match({ ...input, resourceKey: 'a' })).toEqual([]);
    } finally {
      cache.stop();
    }
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings).toEqual([
      expect.objectContaining({
        id: 'wh_old',
        reason: 'repeats more than 100 times ({n,m} counts, multiplied when nested, above 100)',
      }),
    ]);
  });
});

/** A small seeded generator: the same patterns and keys on every run. */
function mulberry32(seed: number) {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
