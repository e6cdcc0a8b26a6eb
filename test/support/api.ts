import type { attemptResponse, deliveryResponse, deliverySummary } from '../../src/delivery-log/views.js';
import { bearer } from './jwt.js';

export type DeliveryBody = ReturnType<typeof deliveryResponse> & { payload: unknown };
export type AttemptBody = ReturnType<typeof attemptResponse>;
export interface ListBody {
  items: ReturnType<typeof deliverySummary>[];
  nextCursor: string | null;
}
export interface TestSendBody {
  webhookId: string;
  event: string;
  eventId: string;
  deliveryId: string;
  success: boolean;
  attempt: AttemptBody;
}
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: { path: string; message: string }[];
}

export interface ApiAnswer<T> {
  status: number;
  type: string | null;
  body: T;
}

/** Calls hookbus's API as `tenant` (JSON in and out); the body is typed by the caller. */
export async function callApi<T = ProblemBody>(
  app: { url: string },
  tenant: string,
  method: string,
  path: string,
  options: { body?: unknown; claims?: Record<string, unknown> } = {},
): Promise<ApiAnswer<T>> {
  const { body, claims = {} } = options;
  const res = await fetch(`${app.url}${path}`, {
    method,
    headers: { ...bearer(tenant, claims), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), body: (text ? JSON.parse(text) : null) as T };
}

/** The paths of a validation problem's errors, sorted. */
export const errorPaths = (problem: ProblemBody) => (problem.errors ?? []).map((e) => e.path).sort();
