/** Something the process depends on, checked for real on every readiness probe and metrics scrape. */
export interface Dependency {
  readonly name: DependencyName;
  /** Resolves true only when the dependency answered just now (never rejects). */
  check(): Promise<boolean>;
}

export type DependencyName = 'mongodb' | 'rabbitmq';

export async function checkAll(dependencies: readonly Dependency[]): Promise<Record<string, boolean>> {
  const results = await Promise.all(dependencies.map(async (d) => [d.name, await d.check()] as const));
  return Object.fromEntries(results);
}

/** Resolves the promise's value, or `fallback` when it takes longer than `ms` or rejects. */
export async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise.catch(() => fallback), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
