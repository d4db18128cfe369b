import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { forgeRsaCsr, opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { latestRequest, storeStats } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

describe('every request is recorded, and secrets never reach the log', () => {
  let ra: TestEstRa;
  before(async () => {
    // A profile that only takes P-256 keys, to see a policy refusal recorded.
    ra = await startEstRa({ editConfig: (yaml) => yaml.replace(/allowed_key_types: \[.*\]/, 'allowed_key_types: [p_256]') });
  });
  after(async () => ra.close());

  it('ok an issued request is stored with its CSR, principal, serial, subject and notAfter', async () => {
    const device = await opensslCsr(ra.dir, 'rec-ok', { subject: '/CN=rec-ok' });
    const answer = await curl(ra, '/simpleenroll', ['--user', `line1:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(answer.status).to.equal(200);
    const latest = await latestRequest(ra, { show: true });
    expect(latest).to.include({ operation: 'simpleenroll', outcome: 'issued', status: 200, profile: 'demo', peer_address: '127.0.0.1', subject: 'CN=rec-ok' });
    expect(latest?.csr).to.equal(device.csrPem.trim());
    expect(latest?.principal).to.include({ kind: 'passcode', policy: 'demo' });
    // The demo policy uses no usernames, so what a client puts there is not kept (issue #10: it may be the passcode).
    expect(latest?.principal).not.to.have.property('username');
    const serial = (await mustRun('openssl', ['x509', '-noout', '-serial'], { input: await certPem(answer.body) })).trim();
    expect(`serial=${latest?.serial ?? ''}`.toUpperCase()).to.equal(serial.toUpperCase());
    expect(Date.parse(latest?.not_after ?? '')).to.be.greaterThan(Date.now());
  });

  it('fail a key type outside the profile: 403, recorded as refused with the reason', async () => {
    const device = forgeRsaCsr(ra.dir, 'rec-rsa');
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal('403 key type rsa_2048 not allowed by profile (allowed: p_256)\n');
    const latest = await latestRequest(ra, { show: true });
    expect(latest).to.include({ outcome: 'refused', status: 403, reason: 'key type rsa_2048 not allowed by profile (allowed: p_256)' });
    expect(latest?.csr).to.equal(device.csrPem.replace(/\r\n/g, '\n').trim());
  });

  it('fail a wrong passcode is counted as a refusal before authentication, the bare challenge is not', async () => {
    const before = await storeStats(ra);
    const device = await opensslCsr(ra.dir, 'rec-wrong');
    expect((await curl(ra, '/simpleenroll', [...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(401);
    expect((await curl(ra, '/simpleenroll', ['--user', 'x:wrong-passcode', ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(401);
    const after = await storeStats(ra);
    expect(after.refusals_counted - before.refusals_counted).to.equal(1);
    expect(after.refusals[0]).to.include({ code: 'EST_AUTH_FAILED', status: 401, last_reason: 'authentication failed: unknown or disabled passcode' });
  });

  it('ok one JSON log line per request with id, profile, principal, operation, outcome and duration; no secrets', async () => {
    const lines = ra.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message === 'est request');
    const issued = lines.find((l) => l.outcome === 'issued');
    expect(issued).to.include({ profile: 'demo', operation: 'simpleenroll', status: 200 });
    expect(issued?.id).to.be.a('string');
    expect(issued?.principal).to.match(/^passcode:/);
    expect(issued?.duration_ms).to.be.a('number');
    const all = ra.logs.join('\n');
    expect(all).not.to.contain(ra.passcode);
    expect(all).not.to.contain('wrong-passcode');
    expect(all).not.to.match(/authorization|Basic [A-Za-z0-9+/=]{8,}/i);
    expect(all).not.to.contain('PRIVATE KEY');
  });
});

async function certPem(base64Body: string): Promise<string> {
  return mustRun('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], { input: Buffer.from(base64Body, 'base64') });
}
