import { readFileSync } from 'node:fs';

/** A secret from its file (trailing newline dropped) or environment variable; names the setting when missing. */
export function readSecret(source: { readonly file?: string; readonly env?: string }, setting: string): string {
  if (source.file !== undefined) return readFileSync(source.file, 'utf8').replace(/\r?\n$/, '');
  const value = process.env[source.env!];
  if (value === undefined || value === '') throw new Error(`${setting}: environment variable ${source.env!} is not set`);
  return value;
}
