import type { z } from 'zod';
import { validationProblem, type FieldError } from './problem.js';

/** zod issues as the `errors` of a problem: the path in dot form, and a sentence a person can act on. */
export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.flatMap((issue): FieldError[] => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: path ? `${path}.${key}` : key, message: 'is not a known field' }));
    }
    return [{ path: path || '(body)', message: issue.message }];
  });
}

/** Parses `input` with `schema`, or throws a 400 problem naming every bad field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw validationProblem(fieldErrors(result.error));
  return result.data;
}
