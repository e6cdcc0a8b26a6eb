import { STATUS_CODES } from 'node:http';
import type { ServerResponse } from 'node:http';

export interface FieldError {
  path: string;
  message: string;
}

/** An RFC 9457 problem: thrown anywhere in a request, answered as application/problem+json. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly extra: {
      type?: string;
      title?: string;
      errors?: FieldError[];
      headers?: Record<string, string>;
    } = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
  }
}

export const PROBLEM_TYPE_BASE = 'urn:hookbus:problem:';

/** The problem's JSON document. */
export function problemBody(problem: HttpProblem): string {
  const { status, detail, extra } = problem;
  return JSON.stringify({
    type: extra.type ? `${PROBLEM_TYPE_BASE}${extra.type}` : 'about:blank',
    title: extra.title ?? STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    ...(extra.errors ? { errors: extra.errors } : {}),
  });
}

/** Works on a plain node:http response as well as on Express's. */
export function sendProblem(res: ServerResponse, problem: HttpProblem): void {
  const { status, extra } = problem;
  for (const [name, value] of Object.entries(extra.headers ?? {})) res.setHeader(name, value);
  const body = problemBody(problem);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/problem+json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

export const notFound = (detail = 'No such resource.') => new HttpProblem(404, detail);

export const validationProblem = (errors: FieldError[]) =>
  new HttpProblem(400, errors.map((e) => `${e.path}: ${e.message}`).join('; '), {
    type: 'validation-error',
    title: 'Invalid request',
    errors,
  });
