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
 * that big (before its size can be asked) can take tens of milliseconds.
 */
export function compileResourceKeyPattern(source: string): ResourceKeyPattern {
  if (source.length > MAX_PATTERN_LENGTH) {
    throw new ResourceKeyPatternError(`must be at most ${MAX_PATTERN_LENGTH} characters`);
  }
  const { elements, repeat } = measure(source);
  if (repeat > MAX_REPEAT) {
    throw new ResourceKeyPatternError(
      `repeats more than ${MAX_REPEAT} times ({n,m} counts, multiplied when nested, above ${MAX_REPEAT})`,
    );
  }
  // Each element needs an instruction at least: more elements than the limit is already too big.
  if (elements > MAX_PROGRAM_SIZE) throw tooManyInstructions();
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
/** A group being read: its widest alternative so far, the current one, and its last item. */
interface Frame {
  widest: number;
  current: number;
  repeat: number;
  last: Extent | undefined;
}
const frame = (): Frame => ({ widest: 0, current: 0, repeat: 1, last: undefined });

const COUNT = /^\{(\d+)(,(\d*))?\}/;
const FLAGS = /^\(\?[imsU-]*\)/;
const GROUP = /^\((\?(P?<[^>]*>|[imsU-]*:))?/;

/**
 * Reads the pattern's text (RE2 syntax) for a lower bound of its instructions and its largest
 * product of nested `{n,m}` counts, without compiling it. Alternatives count as the widest of them,
 * since re2js merges what they share (`a|b` is one class). Invalid syntax is left to the compiler.
 */
function measure(pattern: string): Extent {
  const stack: Frame[] = [];
  let top = frame();
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
      i += escapeLength(rest);
    } else if (char === '[') {
      add({ elements: 1, repeat: 1 });
      i += classLength(rest);
    } else if (char === '(') {
      const flags = FLAGS.exec(rest);
      if (flags) {
        i += flags[0].length;
        continue;
      }
      stack.push(top);
      top = frame();
      i += (GROUP.exec(rest) as RegExpExecArray)[0].length;
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
  return close(top);
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

/** `[...]` up to its closing bracket: a `]` first is literal, `[:alpha:]` and escapes are inside. */
function classLength(rest: string): number {
  let i = rest[1] === '^' ? 2 : 1;
  if (rest[i] === ']') i += 1;
  while (i < rest.length) {
    if (rest[i] === ']') return i + 1;
    if (rest[i] === '\\') i += escapeLength(rest.slice(i));
    else if (rest.startsWith('[:', i)) {
      const end = rest.indexOf(':]', i + 2);
      i = end < 0 ? i + 1 : end + 2;
    } else i += 1;
  }
  return rest.length;
}
