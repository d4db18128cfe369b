import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI } from '../helpers/admin-cli.js';
import { run } from '../helpers/run.js';

/** config/ at the repository root (this file runs from dist/test/cli). */
const EXAMPLES = fileURLToPath(new URL('../../../config/', import.meta.url));

/**
 * Settings an example uses that another part of issue #12 adds to the schema
 * (server-side keys: key_generation_option). While this branch's schema lacks
 * one, that example's check is pending with the reason; once the schema has it,
 * the example is checked like the others and the entry can go.
 */
/**
 * Every example in config/ passes `est-ra check-config`, files included: the
 * examples name the installed paths (/etc/est-ra/..., /var/lib/est-ra/...),
 * which the test maps into a scratch directory where it creates every file
 * they name. check-config reads files only to see that they can be read.
 */
describe('config/ examples pass est-ra check-config', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'est-ra-examples-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const examples = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));

  it('ok there is one example per common case', () => {
    expect(examples).to.include.members([
      'passcode-local-ca.yaml',
      'manufacturer-certificate.yaml',
      'renewal-only.yaml',
      'server-side-keys.yaml',
      'digicert-device-trust-manager.yaml',
      'digicert-pki-platform.yaml',
      'est-ra-chained.yaml',
    ]);
  });

  for (const example of examples) {
    it(`ok ${example}`, async function () {
      const text = readFileSync(join(EXAMPLES, example), 'utf8').replace(/\/(etc|var\/lib)\/est-ra\//g, (path) => `${root}${path}`);
      for (const [file] of text.matchAll(new RegExp(`${root}/(?:etc|var/lib)/est-ra/[A-Za-z0-9._/-]+`, 'g'))) {
        mkdirSync(dirname(file), { recursive: true });
        if (!file.endsWith('.db')) writeFileSync(file, '');
      }
      const file = join(root, example);
      writeFileSync(file, text);
      const result = await run(process.execPath, [CLI, 'check-config', '--config', file]);
      const errors = result.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('warning: ') && !line.startsWith(`${file}: `));
      expect(errors, result.stdout + result.stderr).to.deep.equal([]);
      expect(result.code).to.equal(0);
    });
  }
});
