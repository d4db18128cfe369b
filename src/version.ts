import { readFileSync } from 'node:fs';

/** est-ra's version, from its package.json (the CLI's --version, the node registry). */
export const EST_RA_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
