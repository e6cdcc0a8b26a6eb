import type { RE2JS } from 're2js';

/**
 * Runs a program compiled by re2js as a whole-string match, the way re2js's own NFA does (one
 * thread per instruction, each character stepped once), but on typed arrays, allocating nothing
 * per match. Measured on re2js 1.4.0 (`npm run bench:patterns`): re2js's NFA costs 3-5x as much
 * and allocates threads as it goes (GC pauses push its p99 to several times its mean), and its lazy
 * DFA, tried first by RE2JS.matches(), builds a state per character on patterns like `.*a.{16}`
 * (milliseconds per match). The program is the same, so is the meaning; test/unit checks both
 * agree on random patterns and keys.
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
  private readonly arg: Int32Array;
  /** The rune of Op.Rune. */
  private readonly rune: Int32Array;
  /** re2js's own, for Op.Folded (its matchRune) and Op.Ranges (its [lo, hi] pairs). */
  private readonly instructions: Instruction[];
  private readonly start: number;
  private current: Threads;
  private next: Threads;
  private readonly stack: Int32Array;

  constructor(compiled: RE2JS) {
    const program = (compiled.re2() as { prog: Program }).prog;
    const instructions = program.inst;
    const size = instructions.length;
    this.instructions = instructions;
    this.start = program.start;
    this.op = new Uint8Array(size);
    this.out = new Int32Array(size);
    this.arg = new Int32Array(size);
    this.rune = new Int32Array(size);
    instructions.forEach((inst, pc) => {
      this.op[pc] = opOf(inst);
      this.out[pc] = inst.out;
      this.arg[pc] = inst.arg;
      this.rune[pc] = inst.runes[0] ?? -1;
    });
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
        return rune === this.rune[pc];
      case Op.Ranges:
        return inRanges(this.instructions[pc]!.runes, rune);
      case Op.Folded:
        return this.instructions[pc]!.matchRune(rune);
      case Op.Any:
        return true;
      case Op.AnyButNewline:
        return rune !== NEWLINE;
      default:
        return false;
    }
  }
}

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
    // One rune (case-folded or not) is compared by re2js; more are sorted inclusive [lo, hi] pairs.
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

function inRanges(pairs: number[], rune: number): boolean {
  let lo = 0;
  let hi = pairs.length >> 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rune < pairs[2 * mid]!) hi = mid;
    else if (rune > pairs[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}
