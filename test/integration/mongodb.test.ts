import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Schema } from 'mongoose';
import { Database } from '../../src/db/connection.js';
import { jsonField } from '../../src/db/json-field.js';
import { createLogger } from '../../src/logger.js';
import { mongoUri } from '../support/env.js';

interface Thing {
  _id: string;
  name: string;
  count: number;
  payload: unknown;
}

describe('mongoose on the MongoDB-wire server', () => {
  const db = new Database({ uri: mongoUri(), logger: createLogger('silent') });
  const things = db.connection.model<Thing>(
    'Thing',
    new Schema<Thing>(
      {
        _id: { type: String, required: true },
        name: { type: String, required: true, unique: true },
        count: { type: Number, default: 0 },
        payload: jsonField(),
      },
      { toJSON: { getters: true }, toObject: { getters: true } },
    ),
  );

  beforeAll(async () => {
    await db.ready();
    await things.init();
  });

  afterAll(async () => {
    await db.connection.dropDatabase();
    await db.close();
  });

  it('When a document is created, found, updated and deleted, then each step is seen', async () => {
    await things.create({ _id: 't1', name: 'first', count: 1 });
    expect((await things.findById('t1'))?.name).toBe('first');

    await things.updateOne({ _id: 't1' }, { $inc: { count: 2 }, $set: { name: 'renamed' } });
    const updated = await things.findById('t1').lean();
    expect(updated).toMatchObject({ name: 'renamed', count: 3 });

    expect((await things.deleteOne({ _id: 't1' })).deletedCount).toBe(1);
    expect(await things.findById('t1')).toBeNull();
  });

  it('When a second document takes a unique name, then the duplicate-key error (11000) comes back', async () => {
    await things.create({ _id: 'u1', name: 'unique-name' });
    await expect(things.create({ _id: 'u2', name: 'unique-name' })).rejects.toMatchObject({ code: 11000 });
    await expect(things.create({ _id: 'u1', name: 'other' })).rejects.toMatchObject({ code: 11000 });
  });

  it('When the unique index is listed, then the server has it', async () => {
    const indexes = await things.collection.indexes();
    expect(indexes).toEqual(expect.arrayContaining([expect.objectContaining({ key: { name: 1 }, unique: true })]));
  });

  it('When a payload has keys such as "a.b" and "$x" at any depth, then it round-trips exactly', async () => {
    const payload = {
      'a.b': 1,
      $x: { 'nested.key': [{ $y: null, 'z.z': 'v' }] },
      plain: 'ü ✓',
      list: [1, 'two', { $three: 3 }],
    };
    await things.create({ _id: 'p1', name: 'payload', payload });
    const found = await things.findById('p1');
    expect(found?.payload).toEqual(payload);
    expect(found?.toJSON().payload).toEqual(payload);
  });
});
