import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

/**
 * docs/ARCHITECTURE.md "Folders and what each may import", checked against
 * the source: every relative import between folders of src/ must be one the
 * table allows, which also rules out cycles between folders.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  'errors.ts': [],
  pki: ['errors.ts'],
  ops: ['errors.ts'],
  store: ['errors.ts', 'pki'],
  auth: ['errors.ts', 'pki', 'store', 'ops'],
  upstream: ['errors.ts', 'pki', 'store', 'ops', 'auth'],
  policy: ['errors.ts', 'pki', 'store', 'auth', 'upstream'],
  enrollment: ['errors.ts', 'pki', 'store', 'ops', 'auth', 'upstream', 'policy'],
  config: ['errors.ts', 'pki', 'store', 'auth', 'policy'],
  est: ['errors.ts', 'pki', 'store', 'ops', 'auth', 'policy', 'enrollment'],
};

const SRC = fileURLToPath(new URL('../../../src', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith('.ts') ? [path] : [];
  });
}

/** A file's folder under src/ ('pki'), or the file's own name for the root files ('errors.ts'). */
function unitOf(path: string): string {
  return relative(SRC, path).split(sep)[0]!;
}

describe('architecture: imports between folders follow docs/ARCHITECTURE.md', () => {
  it('every cross-folder import is allowed (no cycles between folders)', () => {
    const violations: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const from = unitOf(file);
      const allowed = MAY_IMPORT[from];
      if (!allowed) continue; // cli/, server.ts, profiles.ts: the composition, may import anything
      for (const match of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        const target = unitOf(normalize(join(dirname(file), match[1]!.replace(/\.js$/, '.ts'))));
        if (target !== from && !allowed.includes(target)) violations.push(`${relative(SRC, file)} imports ${match[1]!}`);
      }
    }
    expect(violations).to.deep.equal([]);
  });
});

/**
 * Issue #11: the tests read est-ra's state as an admin does, through the CLI
 * (test/helpers/admin-cli.ts), never through SQL or the store's objects, so
 * the CLI's JSON is what the specs prove and a PostgreSQL store answers them too.
 */
const TEST = fileURLToPath(new URL('../../../test', import.meta.url));
const REACHES_INTO_THE_STORE: readonly [string, RegExp][] = [
  ['imports better-sqlite3', /(?:from\s+|import\(\s*|require\(\s*)'better-sqlite3'/],
  ['imports src/store/', /(?:from\s+|import\(\s*)'[^']*\/src\/store\/[^']*'/],
  ['uses .server.store', /\.server\.store\b|\{[^}]*\bstore\b[^}]*\}\s*=\s*[\w.!?]*\bserver\b/],
];

describe('architecture: the specs read est-ra state through the admin CLI (issue #11)', () => {
  it('no spec under test/est or test/cli, nor a helper, imports better-sqlite3 or src/store/ or uses .server.store', () => {
    const violations: string[] = [];
    for (const folder of ['est', 'cli', 'helpers']) {
      for (const file of sourceFiles(join(TEST, folder))) {
        const text = readFileSync(file, 'utf8');
        for (const [what, pattern] of REACHES_INTO_THE_STORE) if (pattern.test(text)) violations.push(`${relative(TEST, file)} ${what}`);
      }
    }
    expect(violations).to.deep.equal([]);
  });
});

/**
 * Issue #13: every store is opened by openStore() (src/store/open.ts), so the
 * configuration alone decides SQLite or PostgreSQL and every opening migrates
 * the same way; no code and no spec constructs a store class itself.
 */
describe('architecture: stores are opened only through openStore (issue #13)', () => {
  it('no file but src/store/open.ts constructs SqliteStore or opens PostgresStore (src, test, scripts)', () => {
    const opened = /\bnew\s+SqliteStore\b|\b(?:SqliteStore|PostgresStore)\.open\b/;
    const violations = [...sourceFiles(SRC), ...sourceFiles(TEST), ...sourceFiles(join(SRC, '..', 'scripts'))]
      .filter((file) => opened.test(readFileSync(file, 'utf8')))
      .map((file) => relative(join(SRC, '..'), file))
      .filter((file) => file !== join('src', 'store', 'open.ts'));
    expect(violations).to.deep.equal([]);
  });
});
