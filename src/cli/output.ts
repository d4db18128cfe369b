import { formatTable } from './table.js';

/**
 * A reader that went away (`est-ra passcodes list --json | head -1`) closes
 * the pipe: the next write fails with EPIPE, emitted on stdout as an error
 * event that would otherwise end the process with a stack trace. Whoever
 * closed the pipe has what it wanted, so est-ra ends quietly with 0, as
 * coreutils do under SIGPIPE's default action. Installed once, centrally, before every admin command runs (main.ts).
 */
export function endQuietlyOnClosedPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

export const print = (text: string): void => void process.stdout.write(`${text}\n`);

/** Rows as `--json` (one object per line) or as an aligned table. */
export function printRows<T>(rows: readonly T[], json: boolean | undefined, toJson: (row: T) => object, toColumns: (row: T) => Record<string, string>): void {
  if (json) for (const row of rows) print(JSON.stringify(toJson(row)));
  else print(formatTable(rows.map(toColumns)));
}

/** One record as `--json` or as aligned `name: value` lines. */
export function printRecord(record: Record<string, unknown>, json: boolean | undefined): void {
  if (json) {
    print(JSON.stringify(record));
    return;
  }
  const width = Math.max(...Object.keys(record).map((key) => key.length));
  for (const [key, value] of Object.entries(record)) {
    const text = value === null || value === undefined ? '-' : typeof value === 'string' ? value : JSON.stringify(value);
    print(`${`${key}:`.padEnd(width + 2)}${text}`);
  }
}
