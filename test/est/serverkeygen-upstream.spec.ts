import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { latestRequest, storeStats } from '../helpers/admin-cli.js';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { makeRaIdentity, startUpstream, type RaIdentity, type Upstream } from '../helpers/upstream.js';
import { editProfile } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl, x509Field } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { createPasscode } from '../helpers/passcodes.js';
import { serverKeygenParts } from '../helpers/serverkeygen.js';

const LABEL = 'devicetrustmanager/IOT_1/device-group/line-1';

describe('serverkeygen through an upstream EST server: est-ra signs a CSR with the new key and checks the answer', function () {
  this.timeout(60_000);
  let dir: string;
  let identity: RaIdentity;
  let upstream: Upstream;
  let ra: TestEstRa;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-skg-upstream-'));
    identity = await makeRaIdentity(dir);
    upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile, label: LABEL });
    ra = await startEstRa({
      editConfig: (yaml) =>
        editProfile(yaml, 'demo', (profile) => {
          profile.upstream = 'est';
          profile.key_generation_option = 'server_side';
          profile.allowed_key_types = ['p_256', 'rsa_2048'];
          profile.est = {
            url: upstream.baseUrl,
            ra_certificate: identity.certFile,
            ra_key: identity.keyFile,
            trust_anchors: [upstream.rootCaFile],
            timeout_ms: 2000,
          };
        }),
    });
  });
  after(async () => {
    await ra.close();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const serverkeygen = (csrFile: string, passcode = ra.passcode) =>
    curl(ra, '/serverkeygen', ['--user', `:${passcode}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${csrFile}`]);
  const upstreamVerify = (cert: string): Promise<string> =>
    mustRun('openssl', ['verify', '-CAfile', upstream.rootCaFile, '-untrusted', upstream.issuingCaFile, cert]);

  for (const [kind, keyArgs, keyText] of [
    ['P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'NIST CURVE: P-256'],
    ['RSA-2048', ['-newkey', 'rsa:2048'], 'Private-Key: (2048 bit, 2 primes)'],
  ] as const) {
    it(`ok ${kind}: the upstream issues for est-ra's new key with the CSR's names; the key matches the certificate`, async () => {
      const name = `up-skg-${kind}`;
      const device = await opensslCsr(ra.dir, name, { subject: `/CN=${name}/O=Line 1`, keyArgs: [...keyArgs] });
      const before = (await upstream.stats()).requests.simpleenroll;
      const answer = await serverkeygen(device.csrPemFile);
      expect(answer.status, answer.body).to.equal(200);
      expect((await upstream.stats()).requests.simpleenroll - before, 'one simpleenroll upstream').to.equal(1);
      const parts = await serverKeygenParts(ra.dir, name, answer);
      expect(parts.keyContentType).to.equal('application/pkcs8');
      const keyFile = join(ra.dir, `${name}.key.der`);
      writeFileSync(keyFile, parts.keyDer);
      expect(await mustRun('openssl', ['pkey', '-inform', 'DER', '-in', keyFile, '-noout', '-text'])).to.contain(keyText);
      expect(await upstreamVerify(parts.certFile)).to.contain(': OK');
      expect(await x509Field(parts.certFile, '-subject')).to.equal(`subject=O=Line 1,CN=${name}`);
      const keyPublic = await mustRun('openssl', ['pkey', '-inform', 'DER', '-in', keyFile, '-pubout']);
      expect(await x509Field(parts.certFile, '-pubkey')).to.equal(keyPublic.trim());
    });
  }

  it('fail upstream 202: 502, nothing waits (the key is not kept), and the passcode use is given back', async () => {
    const passcode = await createPasscode(ra, '--max-uses', '1');
    await upstream.setMode('pending');
    try {
      const answer = await serverkeygen((await opensslCsr(ra.dir, 'up-skg-pending')).csrPemFile, passcode);
      expect(answer.status).to.equal(502);
      expect(answer.body).to.match(/^502 the upstream CA did not issue at once \(202: .*\); est-ra keeps no server-generated key to wait with\n$/);
    } finally {
      await upstream.setMode('normal');
    }
    expect(await latestRequest(ra)).to.include({ outcome: 'refused', status: 502, operation: 'serverkeygen' });
    expect((await serverkeygen((await opensslCsr(ra.dir, 'up-skg-after')).csrPemFile, passcode)).status, 'the use was given back').to.equal(200);
  });

  it('fail upstream down (500): 503 with Retry-After, not queued; simpleenroll is refused on a server_side profile', async () => {
    await upstream.setMode('error500');
    try {
      const answer = await serverkeygen((await opensslCsr(ra.dir, 'up-skg-down')).csrPemFile);
      expect(answer.status).to.equal(503);
      expect(answer.headers).to.match(/^retry-after: \d+/im);
      expect(answer.body).to.equal('503 the upstream CA is unreachable; a server-generated key is never queued: send the request again later\n');
      expect((await storeStats(ra)).waiting, 'nothing queued').to.equal(0);
    } finally {
      await upstream.setMode('normal');
    }
    const enroll = await curl(ra, '/simpleenroll', [
      '--user',
      `:${ra.passcode}`,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${(await opensslCsr(ra.dir, 'up-skg-client')).csrPemFile}`,
    ]);
    expect(enroll.status).to.equal(403);
  });
});
