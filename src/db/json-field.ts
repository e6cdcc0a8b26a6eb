import type { SchemaTypeOptions } from 'mongoose';

/**
 * A schema field that holds any JSON value as its serialised text. Payloads and header maps come
 * from strangers and may use keys such as `a.b` or `$x`, which FerretDB refuses at any depth and
 * MongoDB treats specially; stored as a string, every key round-trips on both.
 */
export function jsonField(options: { required?: boolean } = {}): SchemaTypeOptions<string> {
  return {
    type: String,
    required: options.required ?? false,
    set: (value: unknown) => (value === undefined ? undefined : JSON.stringify(value)),
    get: (text: string | undefined | null) => (typeof text === 'string' ? (JSON.parse(text) as unknown) : text),
  } as SchemaTypeOptions<string>;
}
