import { describe, expect, it } from 'vitest';
import { nestingDepth, topLevelMembers, withoutBom, withRawMember } from '../../src/json/raw.js';
import { parseEnvelope, readPayload } from '../../src/envelope.js';

const bytes = (text: string) => Buffer.from(text);

describe('JSON read as bytes', () => {
  it('When brackets stand inside strings, then nesting depth counts only real arrays and objects', () => {
    expect(nestingDepth(bytes('1'))).toBe(0);
    expect(nestingDepth(bytes('{"a":[{"b":"[[[{{{"}]}'))).toBe(3);
    expect(nestingDepth(bytes('["\\"[[[", [[]]]'))).toBe(3);
    expect(nestingDepth(bytes(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), 512)).toBe(513);
  });

  it('When an object has escaped keys, nested values and odd spacing, then each member is its exact bytes', () => {
    const text = '{ "a" : 2.50 ,"d\\u0061ta":{"x":"}\\"",  "y":[1 ,2]} , "n":null,"s":"a\\/b","a":1e400 }';
    const members = topLevelMembers(bytes(text));
    expect([...members.keys()]).toEqual(['a', 'data', 'n', 's']);
    expect(members.get('a')!.toString()).toBe('1e400');
    expect(members.get('data')!.toString()).toBe('{"x":"}\\"",  "y":[1 ,2]}');
    expect(members.get('n')!.toString()).toBe('null');
    expect(members.get('s')!.toString()).toBe('"a\\/b"');
    expect(topLevelMembers(bytes('[1]')).size).toBe(0);
  });

  it('When a member is spliced in raw, then the result is the object with those bytes unchanged', () => {
    expect(withRawMember({}, 'data', bytes('2.50')).toString()).toBe('{"data":2.50}');
    expect(withRawMember({ id: 'e' }, 'data', bytes('[ 1 ]')).toString()).toBe('{"id":"e","data":[ 1 ]}');
    expect(withoutBom(Buffer.from([0xef, 0xbb, 0xbf, 0x31])).toString()).toBe('1');
  });

  it('When a payload is read, then a BOM is dropped and invalid UTF-8, bad JSON and deep nesting are refused', () => {
    expect(readPayload(Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))).toMatchObject({ ok: true, value: {} });
    expect(readPayload(Buffer.from([0x22, 0xc3, 0x28, 0x22]))).toMatchObject({ ok: false, why: 'not UTF-8' });
    const twoMarks = Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, 0x7b, 0x7d]);
    expect(readPayload(twoMarks)).toMatchObject({ ok: false, why: 'not JSON' });
    expect(readPayload(bytes('{'))).toMatchObject({ ok: false, why: 'not JSON' });
    expect(readPayload(bytes(''))).toMatchObject({ ok: false, why: 'empty' });
    expect(readPayload(bytes(`${'['.repeat(513)}${']'.repeat(513)}`))).toMatchObject({ ok: false, why: 'too deep' });
    expect(readPayload(bytes(`${'['.repeat(512)}${']'.repeat(512)}`))).toMatchObject({ ok: true });
  });

  it("When an envelope is read, then data() is its data member's exact bytes", () => {
    const text = '{"id":"evt_1","event":"a.b","tenantId":"t","data": {"n":2.50, "big":12345678901234567890}}';
    const read = parseEnvelope(bytes(text));
    expect(read.ok && read.data().toString()).toBe('{"n":2.50, "big":12345678901234567890}');
  });
});
