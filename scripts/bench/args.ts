/** What the benchmark scripts share: their command-line options and their per-run database names. */

/** `--name <number>`, or the fallback. */
export const numberArg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};

/** `--name <text>`, or the fallback. */
export const textArg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};

/** The URI with `<database>_<suffix>` as its database (`hookbus_bench_<suffix>` when it names none). */
export function databaseOf(uri: string, suffix: string): { uri: string; name: string } {
  const match = /^(mongodb(?:\+srv)?:\/\/[^/?]+)\/?([^?]*)(\?.*)?$/.exec(uri);
  if (!match) throw new Error(`--mongodb-uri: not a MongoDB URI: ${uri}`);
  const name = `${match[2] || 'hookbus_bench'}_${suffix}`;
  return { uri: `${match[1]}/${name}${match[3] ?? ''}`, name };
}
