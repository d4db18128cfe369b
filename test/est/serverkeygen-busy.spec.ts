import { join } from 'node:path';
import { expect } from 'chai';
import { adminCli, ALL, type RequestJson } from '../helpers/admin-cli.js';
import { curl } from '../helpers/clients.js';
import { editConfig, editProfile } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { serverKeygenParts } from '../helpers/serverkeygen.js';
import { mustRun } from '../helpers/run.js';

/**
 * Key generation runs on libuv's thread pool, which also checks every other
 * request's signatures: `limits.concurrent_key_generations` bounds how many
 * run at once and, with 8 waiting per one running, how many wait; beyond
 * that a device is told to come back (503, Retry-After) with its passcode
 * use given back, and other devices' enrollments go on.
 */
describe('serverkeygen under a burst: generations are bounded, the rest wait or are told to come back', function () {
  this.timeout(120_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(
          editProfile(yaml, 'demo', (profile) => {
            profile.key_generation_option = 'either';
            // RSA-3072: about half a second each, so a burst of twenty outlasts its own arrival.
            profile.allowed_key_types = ['p_256', 'rsa_3072'];
          }),
          (config) => void ((config.limits as Record<string, unknown>).concurrent_key_generations = 1),
        ),
    });
  });
  after(async () => ra.close());

  it('ok twenty RSA-3072 requests at once with one generation at a time: at most nine are taken, the rest get 503 + Retry-After 5; a simpleenroll meanwhile is issued', async () => {
    const rsa = await opensslCsr(ra.dir, 'busy-rsa', { keyArgs: ['-newkey', 'rsa:3072'] });
    const burst = Array.from({ length: 20 }, () =>
      curl(ra, '/serverkeygen', ['--user', `:${ra.passcode}`, '-H', 'Content-Type: text/plain', '--data-binary', `@${rsa.csrPemFile}`]),
    );
    const other = await opensslCsr(ra.dir, 'busy-other');
    const enrolled = await curl(ra, '/simpleenroll', [
      '--user',
      `:${ra.passcode}`,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${other.csrPemFile}`,
    ]);
    expect(enrolled.status, enrolled.body).to.equal(200);
    const answers = await Promise.all(burst);

    const issued = answers.filter((a) => a.status === 200);
    const busy = answers.filter((a) => a.status === 503);
    expect(issued.length + busy.length, answers.map((a) => a.status).join(' ')).to.equal(20);
    expect(issued.length).to.be.within(1, 9);
    for (const answer of busy) {
      expect(answer.headers).to.match(/^retry-after: 5\r?$/im);
      expect(answer.body.trim()).to.equal('503 too many server-side key generations at once; retry later');
    }
    const parts = await serverKeygenParts(ra.dir, 'busy-rsa-answer', issued[0]!);
    expect(await mustRun('openssl', ['x509', '-in', parts.certFile, '-noout', '-text'])).to.contain('Public-Key: (3072 bit)');

    // Each turned-away request is recorded as refused with why (and its passcode use given back).
    const requests = (await adminCli(join(ra.dir, 'config.yaml')).json<RequestJson>('requests', 'list', ...ALL)).filter((r) => r.operation === 'serverkeygen');
    expect(requests.filter((r) => r.outcome === 'issued')).to.have.length(issued.length);
    expect(requests.filter((r) => r.status === 503 && /key generations/.test(r.reason ?? ''))).to.have.length(busy.length);
  });
});
