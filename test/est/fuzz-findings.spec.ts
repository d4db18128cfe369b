import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig, editProfile } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { latestRequest } from '../helpers/admin-cli.js';
import { makeRaIdentity, startUpstream, type Upstream } from '../helpers/upstream.js';
import { MAX_UPSTREAM_RETRY_AFTER_S } from '../../src/upstream/est.js';
import { FAR_RETRY_AFTER, forgedClientCertificate } from '../vectors/fuzz-findings.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** Issue #10: each finding of `npm run fuzz`, replayed through the real server with curl (test/vectors/fuzz-findings.ts). */
describe('#10 - fuzz findings replayed', function () {
  this.timeout(60_000);

  describe('a forged TLS client certificate (trusted issuer name, wrong signature)', () => {
    let ra: TestEstRa;
    let forged: Awaited<ReturnType<typeof forgedClientCertificate>>;

    before(async () => {
      const factory = mkdtempSync(join(tmpdir(), 'est-ra-fuzz-finding-'));
      forged = await forgedClientCertificate(factory);
      ra = await startEstRa({
        editConfig: (yaml) =>
          editConfig(yaml, (config) => {
            const policies = config.authentication_policies as Record<string, Record<string, unknown>>;
            policies.demo = { ...policies.demo, authentication_cas: [forged.trustedCaFile] };
            const profiles = config.profiles as Record<string, Record<string, unknown>>;
            profiles.demo!.enroll_authentication = { methods: ['client_certificate'] };
          }),
      });
    });
    after(() => ra.close());

    const withForged = (): string[] => [
      '--cert',
      forged.device.certFile,
      '--key',
      forged.device.keyFile,
      ...PKCS10,
      '--data-binary',
      `@${forged.device.csrPemFile}`,
    ];

    for (const tls of [
      ['TLS 1.2', '--tlsv1.2', '--tls-max', '1.2'],
      ['TLS 1.3', '--tlsv1.3'],
    ]) {
      it(`#10 - over ${tls[0]!} simpleenroll answers 403 naming the certificate, not a reset`, async () => {
        const answer = await curl(ra, '/simpleenroll', [...tls.slice(1), ...withForged()]);
        expect(answer.status, answer.result.stderr).to.equal(403);
        expect(answer.body).to.equal('403 TLS client certificate not accepted: it was not issued by an authentication CA of the policy and is not pinned\n');
      });
    }

    it('#10 - over TLS 1.2 simplereenroll answers 403 too', async () => {
      const answer = await curl(ra, '/simplereenroll', ['--tlsv1.2', '--tls-max', '1.2', ...withForged()]);
      expect(answer.status, answer.result.stderr).to.equal(403);
      expect(answer.body).to.match(/^403 TLS client certificate not accepted: /);
    });
  });

  describe('an upstream 202 whose Retry-After lies past any Date', () => {
    let dir: string;
    let upstream: Upstream;
    let ra: TestEstRa;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'est-ra-fuzz-finding-'));
      const identity = await makeRaIdentity(dir);
      upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile, mode: 'pending-far' });
      ra = await startEstRa({
        editConfig: (yaml) =>
          editProfile(yaml, 'demo', (profile) => {
            profile.upstream = 'est';
            profile.est = { url: upstream.baseUrl, ra_certificate: identity.certFile, ra_key: identity.keyFile, trust_anchors: [upstream.rootCaFile] };
          }),
      });
    });
    after(async () => {
      await ra.close();
      await upstream.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it(`#10 - Retry-After: ${FAR_RETRY_AFTER} from the upstream: the device gets 202 and a Retry-After of at most a day, the request waits`, async () => {
      const device = await opensslCsr(ra.dir, 'far-retry');
      const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
      expect(answer.status, answer.body).to.equal(202);
      const retryAfter = Number(/\r\nRetry-After: (\d+)\r\n/.exec(answer.headers)?.[1]);
      expect(retryAfter).to.be.within(1, MAX_UPSTREAM_RETRY_AFTER_S);
      expect((await latestRequest(ra))?.outcome).to.equal('pending');
      expect((await upstream.stats()).requests.simpleenroll).to.equal(1);
    });
  });
});
