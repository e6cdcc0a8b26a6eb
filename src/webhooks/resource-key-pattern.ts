import { RE2JS } from 're2js';
import { ProgramMatcher } from './resource-key-matcher.js';

/**
 * The bounds that keep `filter.resourceKeyPattern` from stalling dispatch. Matching takes time
 * linear in the key's length times the program's size, so both are capped: the slowest accepted
 * pattern against the longest accepted key stays well under 1 ms per match (`npm run
 * bench:patterns` measures it).
 */
export const MAX_PATTERN_LENGTH = 256;
/** Highest `{n,m}` count, also for the product of nested counts: `(?:a{10}){20}` repeats 200 times. */
export const MAX_REPEAT = 100;
/** re2js's `programSize()`: an instruction per character or class, plus those for loops and choices. */
export const MAX_PROGRAM_SIZE = 64;
/** Longer keys match no pattern (and POST /api/events refuses them). */
export const MAX_RESOURCE_KEY_LENGTH = 256;
/**
 * `\p{..}` and `\P{..}` escapes: re2js merges and sorts a table of up to ~1,600 ranges for each
 * (~0.2 ms under (?i) or inside a class of several); 63 of them took 20-70 ms to compile.
 */
export const MAX_UNICODE_CLASSES = 16;
/**
 * Under (?i), re2js folds a class range rune by rune (between U+0041 and U+1E943, unless the range
 * covers all of that): `(?i)[B-\x{1E942}]` took 18 ms to compile, 15 of them 390 ms. 4,096 runes
 * take about 1 ms.
 */
export const MAX_FOLDED_RANGE_RUNES = 4096;

/** A pattern outside the limits or not RE2 syntax; the message names the limit, as a field error would. */
export class ResourceKeyPatternError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ResourceKeyPatternError';
  }
}

export interface ResourceKeyPattern {
  readonly source: string;
  readonly programSize: number;
  /** Whether the whole key matches; a key over MAX_RESOURCE_KEY_LENGTH never does. */
  matches(key: string): boolean;
}

const tooManyInstructions = () => new ResourceKeyPatternError(`compiles to more than ${MAX_PROGRAM_SIZE} instructions`);

/**
 * Compiles a resource key pattern within the limits, or throws a ResourceKeyPatternError. The
 * cheap checks on the text come first: re2js allows counts up to 1000, and compiling a pattern
 * that big (before its size can be asked) can take tens of milliseconds, as can large Unicode
 * classes and case-folded ranges.
 */
export function compileResourceKeyPattern(source: string): ResourceKeyPattern {
  if (source.length > MAX_PATTERN_LENGTH) {
    throw new ResourceKeyPatternError(`must be at most ${MAX_PATTERN_LENGTH} characters`);
  }
  const { elements, repeat, unicodeClasses, foldedRangeRunes } = measure(source);
  if (repeat > MAX_REPEAT) {
    throw new ResourceKeyPatternError(
      `repeats more than ${MAX_REPEAT} times ({n,m} counts, multiplied when nested, above ${MAX_REPEAT})`,
    );
  }
  // Each element needs an instruction at least: more elements than the limit is already too big.
  if (elements > MAX_PROGRAM_SIZE) throw tooManyInstructions();
  if (unicodeClasses > MAX_UNICODE_CLASSES) {
    throw new ResourceKeyPatternError(`has more than ${MAX_UNICODE_CLASSES} Unicode classes (\\p{..} or \\P{..})`);
  }
  if (foldedRangeRunes > MAX_FOLDED_RANGE_RUNES) {
    throw new ResourceKeyPatternError(
      `case-folds more than ${MAX_FOLDED_RANGE_RUNES} characters in class ranges under (?i)`,
    );
  }
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(source);
  } catch (error) {
    throw new ResourceKeyPatternError(`is not a valid regular expression: ${(error as Error).message}`);
  }
  const programSize = compiled.programSize();
  if (programSize > MAX_PROGRAM_SIZE) throw tooManyInstructions();
  const matcher = new ProgramMatcher(compiled);
  return {
    source,
    programSize,
    matches: (key) => key.length <= MAX_RESOURCE_KEY_LENGTH && matcher.matches(key),
  };
}

/** Matchable elements once counts are applied, and the largest product of nested counts. */
interface Extent {
  elements: number;
  repeat: number;
}
/** A group being read: its widest alternative so far, the current one, its last item, and (?i). */
interface Frame {
  widest: number;
  current: number;
  repeat: number;
  last: Extent | undefined;
  fold: boolean;
}
const frame = (fold: boolean): Frame => ({ widest: 0, current: 0, repeat: 1, last: undefined, fold });
/** What compiling the pattern costs besides its instructions. */
interface Cost {
  unicodeClasses: number;
  foldedRangeRunes: number;
}

const COUNT = /^\{(\d+)(,(\d*))?\}/;
const FLAGS = /^\(\?([imsU-]*)\)/;
const GROUP = /^\((\?(P?<[^>]*>|([imsU-]*):))?/;

/** Whether case folding is on after the flags of `(?flags)` or `(?flags:` (i sets it, -i clears it). */
function foldAfter(flags: string, fold: boolean): boolean {
  let clearing = false;
  for (const flag of flags) {
    if (flag === '-') clearing = true;
    else if (flag === 'i') fold = !clearing;
  }
  return fold;
}

/**
 * Reads the pattern's text (RE2 syntax) for a lower bound of its instructions, its largest product
 * of nested `{n,m}` counts, its Unicode classes and the runes of class ranges it case-folds, without
 * compiling it. Alternatives count as the widest of them, since re2js merges what they share (`a|b`
 * is one class). Case folding is followed as re2js does: `(?i)` to the end of its group, `(?i:..)`
 * within. Invalid syntax is left to the compiler, which stops there.
 */
function measure(pattern: string): Extent & Cost {
  const stack: Frame[] = [];
  let top = frame(false);
  const cost: Cost = { unicodeClasses: 0, foldedRangeRunes: 0 };
  const settle = (f: Frame) => {
    if (f.last) {
      f.current += f.last.elements;
      f.repeat = Math.max(f.repeat, f.last.repeat);
      f.last = undefined;
    }
  };
  const close = (f: Frame): Extent => {
    settle(f);
    return { elements: Math.max(f.widest, f.current), repeat: f.repeat };
  };
  const add = (item: Extent) => {
    settle(top);
    top.last = item;
  };
  let i = 0;
  while (i < pattern.length) {
    const rest = pattern.slice(i);
    const char = String.fromCodePoint(rest.codePointAt(0) as number);
    if (char === '\\' && rest[1] === 'Q') {
      const end = rest.indexOf('\\E', 2);
      for (const _ of end < 0 ? rest.slice(2) : rest.slice(2, end)) add({ elements: 1, repeat: 1 });
      i += end < 0 ? rest.length : end + 2;
    } else if (char === '\\') {
      add({ elements: 1, repeat: 1 });
      if (rest[1] === 'p' || rest[1] === 'P') cost.unicodeClasses += 1;
      i += escapeLength(rest);
    } else if (char === '[') {
      add({ elements: 1, repeat: 1 });
      const charClass = readClass(rest, top.fold);
      cost.unicodeClasses += charClass.unicodeClasses;
      cost.foldedRangeRunes += charClass.foldedRangeRunes;
      i += charClass.length;
    } else if (char === '(') {
      const flags = FLAGS.exec(rest);
      if (flags) {
        top.fold = foldAfter(flags[1] as string, top.fold);
        i += flags[0].length;
        continue;
      }
      const group = GROUP.exec(rest) as RegExpExecArray;
      stack.push(top);
      top = frame(group[3] === undefined ? top.fold : foldAfter(group[3], top.fold));
      i += group[0].length;
    } else if (char === ')' && stack.length > 0) {
      const group = close(top);
      top = stack.pop() as Frame;
      add(group);
      i += 1;
    } else if (char === '|') {
      top.widest = close(top).elements;
      top.current = 0;
      i += 1;
    } else if (char === '{' && top.last && COUNT.test(rest)) {
      const [count, low, range, high] = COUNT.exec(rest) as RegExpExecArray;
      // `{n}` and `{n,}` repeat n times (the rest as a loop), `{n,m}` up to m.
      const times = range && high ? Math.max(Number(low), Number(high)) : Number(low);
      top.last.elements *= times;
      top.last.repeat *= Math.max(times, 1);
      i += count.length;
    } else if ('*+?'.includes(char) && top.last) {
      i += 1;
    } else {
      add({ elements: 1, repeat: 1 });
      i += char.length;
    }
  }
  return { ...close(top), ...cost };
}

/** `\d`, `\pL`, `\p{Greek}`, `\x41`, `\x{10FFFF}`, `\123`: how many characters the escape takes. */
function escapeLength(rest: string): number {
  const next = rest[1] ?? '';
  if ((next === 'p' || next === 'P' || next === 'x') && rest[2] === '{') {
    const end = rest.indexOf('}', 3);
    return end < 0 ? rest.length : end + 1;
  }
  if (next === 'p' || next === 'P') return 3;
  if (next === 'x') return 4;
  if (/[0-7]/.test(next)) return 1 + (/^[0-7]{1,3}/.exec(rest.slice(1)) as RegExpExecArray)[0].length;
  return 2;
}

// re2js's Unicode.MIN_FOLD and MAX_FOLD: the runes case folding can change.
const MIN_FOLD = 0x41;
const MAX_FOLD = 0x1e943;

/**
 * `[...]` as re2js's parseClass reads it: how many characters it takes, its Unicode classes, and
 * how many runes of its ranges re2js folds one by one (`fold`: under (?i)). POSIX (`[:alpha:]`) and
 * Perl (`\d`) classes are ASCII, folded quickly.
 */
function readClass(rest: string, fold: boolean): Cost & { length: number } {
  const found: Cost = { unicodeClasses: 0, foldedRangeRunes: 0 };
  let i = rest[1] === '^' ? 2 : 1;
  // A `]` first is literal.
  for (let first = true; i < rest.length && (rest[i] !== ']' || first); first = false) {
    const named = rest.startsWith('[:', i) ? rest.indexOf(':]', i) : -1;
    if (named >= 0) {
      i = named + 2;
    } else if (rest[i] === '\\' && (rest[i + 1] === 'p' || rest[i + 1] === 'P')) {
      found.unicodeClasses += 1;
      i += escapeLength(rest.slice(i));
    } else if (rest[i] === '\\' && 'dDsSwW'.includes(rest[i + 1] ?? '')) {
      i += 2;
    } else {
      const lo = classRune(rest, i);
      let hi = lo;
      // `a-]` is `a` and `-`.
      if (rest[lo.end] === '-' && lo.end + 1 < rest.length && rest[lo.end + 1] !== ']')
        hi = classRune(rest, lo.end + 1);
      if (fold) found.foldedRangeRunes += foldedRunes(lo.rune, hi.rune);
      i = hi.end;
    }
  }
  return { ...found, length: Math.min(i + 1, rest.length) };
}

const CONTROLS = new Map([
  ['a', 7],
  ['f', 12],
  ['n', 10],
  ['r', 13],
  ['t', 9],
  ['v', 11],
]);

/** The rune of a class character at `at` (re2js's parseClassChar) and where it ends; -1 if invalid. */
function classRune(rest: string, at: number): { rune: number; end: number } {
  if (rest[at] !== '\\') {
    const rune = rest.codePointAt(at) ?? -1;
    return { rune, end: at + (rune > 0xffff ? 2 : 1) };
  }
  const end = at + escapeLength(rest.slice(at));
  const escape = rest.slice(at + 1, end);
  const hex = /^x(?:\{([0-9A-Fa-f]+)\}|([0-9A-Fa-f]{2}))$/.exec(escape);
  let rune = -1;
  if (hex) rune = parseInt((hex[1] ?? hex[2]) as string, 16);
  else if (/^(?:0[0-7]{0,2}|[1-7][0-7]{1,2})$/.test(escape)) rune = parseInt(escape, 8);
  else if (CONTROLS.has(escape)) rune = CONTROLS.get(escape) as number;
  // Any other ASCII character but a letter or digit stands for itself.
  else if (/^[\0-\x7f]$/.test(escape) && !/[0-9A-Za-z]/.test(escape)) rune = escape.charCodeAt(0);
  return { rune, end };
}

/** How many runes of [lo, hi] re2js's CharClass.appendFoldedRange folds one by one. */
function foldedRunes(lo: number, hi: number): number {
  if (lo < 0 || hi < lo || (lo <= MIN_FOLD && hi >= MAX_FOLD)) return 0;
  return Math.max(0, Math.min(hi, MAX_FOLD) - Math.max(lo, MIN_FOLD) + 1);
}
