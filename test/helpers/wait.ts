/**
 * Polls until `check` yields a value other than undefined or false (background work such as the retry
 * worker is not awaited by the test), failing after `ms`. A bound on how
 * long a test may wait, not a timing assertion.
 */
export async function eventually<T>(check: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000): Promise<Exclude<T, false>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as Exclude<T, false>;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
