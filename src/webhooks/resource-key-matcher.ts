import { RE2JS } from 're2js';

/**
 * Runs a program compiled by re2js as a whole-string match, the way re2js's own NFA does (one
 * thread per instruction, each character stepped once), but on typed arrays, allocating nothing
 * per match. Measured on re2js 1.4.0 (`npm run bench:patterns`): re2js's NFA costs 3-5x as much
 * and allocates threads as it goes (GC pauses push its p99 to several times its mean), and its lazy
 * DFA, tried first by RE2JS.matches(), builds a state per character on patterns like `.*a.{16}`
 * (milliseconds per match). The program is the same, so is the meaning; test/unit checks both
 * agree on random patterns and keys.
 *
 * Each instruction costs about the same on every character. re2js compares a case-folded rune by
 * walking its case-folding orbit (θ ϑ ϴ Θ) on each character, through Map look-ups and string case
 * mappings; here the orbit is found once, when the matcher is built, and compared as four ints. A
 * large class is a bitmap for the BMP; above it, a binary search (11 steps for the largest classes,
 * ~1,600 ranges, on at most 128 characters).
 */

/** re2js's instructions (its `Inst` class, not exported). */
interface Instruction {
  op: number;
  out: number;
  arg: number;
  runes: number[];
  matchRune(rune: number): boolean;
}
interface Program {
  inst: Instruction[];
  start: number;
}
const RE2JS_OP = {
  ALT: 1,
  ALT_MATCH: 2,
  CAPTURE: 3,
  EMPTY_WIDTH: 4,
  FAIL: 5,
  MATCH: 6,
  NOP: 7,
  RUNE: 8,
  RUNE1: 9,
  RUNE_ANY: 10,
  RUNE_ANY_NOT_NL: 11,
};

/** What each instruction does here. */
const Op = {
  Fail: 0,
  Split: 1,
  Follow: 2,
  Assert: 3,
  Match: 4,
  Rune: 5,
  Ranges: 6,
  Folded: 7,
  Any: 8,
  AnyButNewline: 9,
} as const;

/** re2js's RE2Flags.FOLD_CASE, set in the arg of a case-folded rune instruction. */
const FOLD_CASE = 0x01;
const MAX_RUNE = 0x10ffff;
const MAX_BMP = 0xffff;
/** The longest case-folding orbit in Unicode (re2js's simpleFold): θ ϑ ϴ Θ, ͅ Ι ι ι. */
const ORBIT = 4;
/** A class of more pairs than this gets a bitmap of the BMP: 16 pairs take 5 search steps. */
const BITMAP_PAIRS = 16;
/** The BMP bitmap's blocks: 256 of 256 runes, 8 words each. */
const BLOCKS = 256;
const BLOCK_WORDS = 8;

// re2js's EMPTY_* flags, for the assertions (^ $ \A \z \b \B) at a position.
const BEGIN_LINE = 0x01;
const END_LINE = 0x02;
const BEGIN_TEXT = 0x04;
const END_TEXT = 0x08;
const WORD_BOUNDARY = 0x10;
const NO_WORD_BOUNDARY = 0x20;
const NEWLINE = 10;

const isWordRune = (r: number) => (r >= 48 && r <= 57) || (r >= 65 && r <= 90) || (r >= 97 && r <= 122) || r === 95;

/** The assertions that hold between `before` and `after` (-1: the start or end of the key). */
function context(before: number, after: number): number {
  let flags = isWordRune(before) === isWordRune(after) ? NO_WORD_BOUNDARY : WORD_BOUNDARY;
  if (before < 0) flags |= BEGIN_TEXT | BEGIN_LINE;
  else if (before === NEWLINE) flags |= BEGIN_LINE;
  if (after < 0) flags |= END_TEXT | END_LINE;
  else if (after === NEWLINE) flags |= END_LINE;
  return flags;
}

/** The threads at one position: a sparse set of instructions. */
class Threads {
  readonly list: Int32Array;
  private readonly slot: Int32Array;
  size = 0;
  constructor(capacity: number) {
    this.list = new Int32Array(capacity);
    this.slot = new Int32Array(capacity);
  }
  /** Adds pc unless present; false when it was. */
  add(pc: number): boolean {
    const slot = this.slot[pc]!;
    if (slot < this.size && this.list[slot] === pc) return false;
    this.slot[pc] = this.size;
    this.list[this.size++] = pc;
    return true;
  }
}

export class ProgramMatcher {
  private readonly op: Uint8Array;
  private readonly out: Int32Array;
  /**
   * What the instruction needs besides op and out: Split, the other branch; Assert, the flags it
   * needs; Rune, the rune; Folded and Ranges, where its data begins in `runes`.
   */
  private readonly arg: Int32Array;
  /** The Folded and Ranges instructions' data (see RuneData), once per distinct orbit or class. */
  private readonly runes: Int32Array;
  private readonly start: number;
  private current: Threads;
  private next: Threads;
  private readonly stack: Int32Array;

  constructor(compiled: RE2JS) {
    const program = programOf(compiled);
    const instructions = program.inst;
    const size = instructions.length;
    this.start = program.start;
    this.op = new Uint8Array(size);
    this.out = new Int32Array(size);
    this.arg = new Int32Array(size);
    const ops = instructions.map(opOf);
    const orbits = orbitsOf(instructions.filter((_, pc) => ops[pc] === Op.Folded));
    const data = new RuneData();
    instructions.forEach((inst, pc) => {
      let op = ops[pc]!;
      let arg = inst.arg;
      if (op === Op.Rune) arg = inst.runes[0]!;
      else if (op === Op.Ranges) arg = data.ranges(inst.runes);
      else if (op === Op.Folded) {
        const orbit = orbits.get(inst)!;
        if (orbit.length <= ORBIT) arg = data.orbit(orbit);
        else {
          // Longer than any orbit in Unicode today: searched as a class instead.
          op = Op.Ranges;
          arg = data.ranges(orbit.flatMap((rune) => [rune, rune]));
        }
      }
      this.op[pc] = op;
      this.out[pc] = inst.out;
      this.arg[pc] = arg;
    });
    this.runes = data.words();
    this.current = new Threads(size);
    this.next = new Threads(size);
    // Only a split leaves the stack deeper (pops one, pushes two), once per instruction it adds.
    this.stack = new Int32Array(size + 1);
  }

  /** Whether the whole key matches (re2js's Matcher.matches()). */
  matches(key: string): boolean {
    let rune = key.length > 0 ? (key.codePointAt(0) as number) : -1;
    this.current.size = 0;
    this.follow(this.current, this.start, context(-1, rune));
    for (let i = 0; i < key.length;) {
      const width = rune > 0xffff ? 2 : 1;
      const after = i + width < key.length ? (key.codePointAt(i + width) as number) : -1;
      const flags = context(rune, after);
      const { current, next } = this;
      next.size = 0;
      for (let t = 0; t < current.size; t++) {
        const pc = current.list[t]!;
        if (this.takes(pc, rune)) this.follow(next, this.out[pc]!, flags);
      }
      if (next.size === 0) return false;
      this.current = next;
      this.next = current;
      i += width;
      rune = after;
    }
    for (let t = 0; t < this.current.size; t++) {
      if (this.op[this.current.list[t]!] === Op.Match) return true;
    }
    return false;
  }

  /** Adds pc and every instruction it reaches without reading a character. */
  private follow(threads: Threads, pc: number, flags: number): void {
    const { op, out, arg, stack } = this;
    let top = 0;
    stack[top++] = pc;
    while (top > 0) {
      const at = stack[--top]!;
      if (!threads.add(at)) continue;
      switch (op[at]) {
        case Op.Split:
          stack[top++] = arg[at]!;
          stack[top++] = out[at]!;
          break;
        case Op.Assert:
          if ((arg[at]! & ~flags) === 0) stack[top++] = out[at]!;
          break;
        case Op.Follow:
          stack[top++] = out[at]!;
          break;
      }
    }
  }

  private takes(pc: number, rune: number): boolean {
    switch (this.op[pc]) {
      case Op.Rune:
        return rune === this.arg[pc];
      case Op.Ranges: {
        const { runes } = this;
        const at = this.arg[pc]!;
        const bitmap = runes[at + 1]!;
        if (bitmap >= 0 && rune <= MAX_BMP) {
          const block = runes[bitmap + (rune >> 8)]!;
          return ((runes[block + ((rune >> 5) & 7)]! >>> (rune & 31)) & 1) === 1;
        }
        return inRanges(runes, at, rune);
      }
      case Op.Folded: {
        const { runes } = this;
        const at = this.arg[pc]!;
        return rune === runes[at] || rune === runes[at + 1] || rune === runes[at + 2] || rune === runes[at + 3];
      }
      case Op.Any:
        return true;
      case Op.AnyButNewline:
        return rune !== NEWLINE;
      default:
        return false;
    }
  }
}

const programOf = (compiled: RE2JS) => (compiled.re2() as { prog: Program }).prog;

function opOf(inst: Instruction): number {
  switch (inst.op) {
    case RE2JS_OP.ALT:
    case RE2JS_OP.ALT_MATCH:
      return Op.Split;
    case RE2JS_OP.CAPTURE:
    case RE2JS_OP.NOP:
      return Op.Follow;
    case RE2JS_OP.EMPTY_WIDTH:
      return Op.Assert;
    case RE2JS_OP.FAIL:
      return Op.Fail;
    case RE2JS_OP.MATCH:
      return Op.Match;
    case RE2JS_OP.RUNE1:
      return Op.Rune;
    // One rune is case-folded (re2js makes RUNE1 of one rune otherwise); more are sorted inclusive
    // [lo, hi] pairs.
    case RE2JS_OP.RUNE:
      return inst.runes.length === 1 ? Op.Folded : Op.Ranges;
    case RE2JS_OP.RUNE_ANY:
      return Op.Any;
    case RE2JS_OP.RUNE_ANY_NOT_NL:
      return Op.AnyButNewline;
    default:
      throw new Error(`re2js instruction ${inst.op} is unknown here: was re2js upgraded?`);
  }
}

/**
 * The data of Folded and Ranges instructions in one array, each distinct orbit or class once
 * (`(?:\pL*){31}` holds one \pL):
 * - Folded: ORBIT runes, the orbit repeated to fill them.
 * - Ranges: the number of [lo, hi] pairs, where its bitmap begins (-1 for none), the sorted inclusive
 *   pairs, then for a class of more than BITMAP_PAIRS pairs, a bitmap of the BMP: where each of its
 *   256 blocks of 256 runes begins, then the blocks (8 words, a bit per rune) other than all-clear
 *   and all-set ones, which the classes share. A binary search of \p{L}'s 677 pairs takes 10 steps
 *   per character and thread; the bitmap, two reads. Runes above the BMP are searched, but take two
 *   of a key's 256 UTF-16 code units each.
 */
class RuneData {
  private readonly chunks: ArrayLike<number>[] = [];
  private size = 0;
  private readonly orbits = new Map<string, number>();
  /** Classes by their number of runes. */
  private readonly classes = new Map<number, { pairs: number[]; at: number }[]>();
  /** The all-clear and all-set blocks. */
  private readonly uniform = new Map<number, number>();

  orbit(orbit: number[]): number {
    const key = orbit.join();
    let at = this.orbits.get(key);
    if (at === undefined) {
      at = this.append(Array.from({ length: ORBIT }, (_, i) => orbit[i % orbit.length]!));
      this.orbits.set(key, at);
    }
    return at;
  }

  ranges(pairs: number[]): number {
    // Compared by content (\PL alone has 1,300 runes); the copies in a loop share one array.
    const sameLength = this.classes.get(pairs.length) ?? [];
    const same = sameLength.find((known) => known.pairs === pairs || sameRunes(known.pairs, pairs));
    if (same) return same.at;
    const at =
      pairs.length > 2 * BITMAP_PAIRS ? this.withBitmap(pairs) : this.append([pairs.length >> 1, -1, ...pairs]);
    this.classes.set(pairs.length, [...sameLength, { pairs, at }]);
    return at;
  }

  /** All the data, for ProgramMatcher.runes. */
  words(): Int32Array {
    const words = new Int32Array(this.size);
    let at = 0;
    for (const chunk of this.chunks) {
      words.set(chunk, at);
      at += chunk.length;
    }
    return words;
  }

  private withBitmap(pairs: number[]): number {
    const bits = new Int32Array(BLOCKS * BLOCK_WORDS);
    for (let p = 0; p < pairs.length && pairs[p]! <= MAX_BMP; p += 2) {
      const lo = pairs[p]!;
      const hi = Math.min(pairs[p + 1]!, MAX_BMP);
      for (let word = lo >> 5; word <= hi >> 5; word++) {
        const from = word === lo >> 5 ? lo & 31 : 0;
        const to = word === hi >> 5 ? hi & 31 : 31;
        bits[word]! |= (-1 >>> (31 - to)) & (-1 << from);
      }
    }
    // The shared blocks first: appending one moves where this class begins.
    const blocks = new Int32Array(BLOCKS).fill(-1);
    let mixed = 0;
    for (let b = 0; b < BLOCKS; b++) {
      const first = b * BLOCK_WORDS;
      let uniform = true;
      for (let word = first + 1; word < first + BLOCK_WORDS && uniform; word++) uniform = bits[word] === bits[first];
      if (uniform) blocks[b] = this.uniformBlock(bits[first]!);
      else mixed++;
    }
    const index = 2 + pairs.length;
    const chunk = new Int32Array(index + BLOCKS + mixed * BLOCK_WORDS);
    const at = this.size;
    chunk[0] = pairs.length >> 1;
    chunk[1] = at + index;
    chunk.set(pairs, 2);
    let next = index + BLOCKS;
    for (let b = 0; b < BLOCKS; b++) {
      if (blocks[b]! >= 0) chunk[index + b] = blocks[b]!;
      else {
        chunk[index + b] = at + next;
        chunk.set(bits.subarray(b * BLOCK_WORDS, (b + 1) * BLOCK_WORDS), next);
        next += BLOCK_WORDS;
      }
    }
    return this.append(chunk);
  }

  private uniformBlock(word: number): number {
    let at = this.uniform.get(word);
    if (at === undefined) {
      at = this.append(new Int32Array(BLOCK_WORDS).fill(word));
      this.uniform.set(word, at);
    }
    return at;
  }

  private append(chunk: ArrayLike<number>): number {
    const at = this.size;
    this.chunks.push(chunk);
    this.size += chunk.length;
    return at;
  }
}

/** Whether a and b, of the same length, hold the same runes. */
function sameRunes(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether rune is in the Ranges instruction's sorted inclusive [lo, hi] pairs (data at `at`). */
function inRanges(runes: Int32Array, at: number, rune: number): boolean {
  let lo = 0;
  let hi = runes[at]!;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const pair = at + 2 + 2 * mid;
    if (rune < runes[pair]!) hi = mid;
    else if (rune > runes[pair + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/** Each rune's case-folding orbit (itself included), as re2js folds it; kept for every matcher. */
const orbitCache = new Map<number, number[]>();

/**
 * The runes each case-folded rune instruction takes: re2js's matchRune walks the rune's orbit
 * under Unicode.simpleFold, which re2js does not export. Its parser folds a class under (?i) with
 * the same walk, so the class `[r\x{10FFFF}]` holds r's orbit (and U+10FFFF, which folds to
 * nothing else, keeping it a class rather than a folded rune again). One compile serves all the
 * runes not cached yet. Each rune found is checked against the instruction's own matchRune.
 */
function orbitsOf(folded: Instruction[]): Map<Instruction, number[]> {
  const missing = [...new Set(folded.map((inst) => inst.runes[0]!))].filter((rune) => !orbitCache.has(rune));
  if (missing.length > 0) {
    const source = `(?i)${missing.map((rune) => `[\\x{${rune.toString(16)}}\\x{10ffff}]`).join('')}`;
    const classes = programOf(RE2JS.compile(source)).inst.filter((inst) => inst.op === RE2JS_OP.RUNE);
    if (classes.length !== missing.length) throw unexpected(`${source} compiled to ${classes.length} classes`);
    missing.forEach((rune, i) => {
      const pairs = classes[i]!.runes;
      const orbit: number[] = [];
      for (let p = 0; p < pairs.length; p += 2) {
        for (let member = pairs[p]!; member <= pairs[p + 1]! && member !== MAX_RUNE; member++) orbit.push(member);
      }
      if (!orbit.includes(rune)) throw unexpected(`the orbit of U+${rune.toString(16)} lacks it`);
      orbitCache.set(rune, orbit);
    });
  }
  return new Map(
    folded.map((inst) => {
      const rune = inst.runes[0]!;
      const orbit = (inst.arg & FOLD_CASE) === 0 ? [rune] : orbitCache.get(rune)!;
      for (const member of orbit) {
        if (!inst.matchRune(member))
          throw unexpected(`U+${rune.toString(16)} does not fold to U+${member.toString(16)}`);
      }
      return [inst, orbit];
    }),
  );
}

const unexpected = (what: string) => new Error(`re2js case folding is not as expected (${what}): was re2js upgraded?`);
