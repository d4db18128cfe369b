import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { ERROR_CATALOGUE, EstError, type EstErrorCode } from '../../src/errors.js';

describe('error catalogue', () => {
  const entries = Object.entries(ERROR_CATALOGUE) as [EstErrorCode, { status: number; reason: string }][];
  const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

  for (const [code, entry] of entries) {
    it(`ok ${code}: valid status, one-line reason, documented`, () => {
      expect(code).to.match(/^EST_[A-Z_]+$/);
      expect(entry.status).to.be.oneOf([202, 400, 401, 403, 404, 405, 413, 415, 429, 500, 501, 502, 503]);
      expect(entry.reason).to.match(/^[^\r\n]+$/);
      expect(docs).to.contain(`\`${code}\``);
      const error = new EstError(code);
      expect(error.status).to.equal(entry.status);
      expect(error.reason).to.equal(entry.reason);
    });
  }

  it('ok reasons are flattened to one bounded line', () => {
    const error = new EstError('EST_CSR_MALFORMED', { reason: `first line\r\nsecond ${'x'.repeat(300)}` });
    expect(error.reason).not.to.match(/[\r\n]/);
    expect(error.reason.length).to.be.at.most(200);
  });
});
