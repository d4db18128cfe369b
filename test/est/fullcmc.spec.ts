import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { latestRequest } from '../helpers/admin-cli.js';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { makeRaIdentity, startUpstream, type RaIdentity, type Upstream } from '../helpers/upstream.js';
import { editConfig } from '../helpers/config.js';
import { curl } from '../helpers/clients.js';

const LABEL = 'devicetrustmanager/IOT_1/device-group/line-1';
const CMC_REQUEST = ['-H', 'Content-Type: application/pkcs7-mime; smime-type=CMC-request'];
const UPSTREAM_PASSCODE_ENV = 'EST_RA_TEST_FULLCMC_UPSTREAM_PASSCODE';

/**
 * RFC 7030 §4.3 /fullcmc: relayed byte for byte to the upstream over est-ra's
 * RA identity with `fullcmc: passthrough`, 501 everywhere else. The test
 * upstream answers a CMC-response-typed report of what reached it.
 */
describe('fullcmc passthrough (RFC 7030 §4.3)', function () {
  this.timeout(60_000);
  let dir: string;
  let identity: RaIdentity;
  let upstream: Upstream;
  let guarded: Upstream;
  let ra: TestEstRa;
  let cmcFile: string;
  let cmcSha256: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-fullcmc-'));
    identity = await makeRaIdentity(dir);
    // No upstream passcode: an Authorization header reaching the upstream could only be the device's own.
    upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile, label: LABEL });
    // An upstream that wants est-ra's own passcode as well: relayed with it, and without it (est-ra's 502, not the device's 401).
    guarded = await startUpstream({ dir: join(dir, 'guarded'), clientCaFile: identity.caFile, passcode: 'upstream-secret', label: LABEL });
    process.env[UPSTREAM_PASSCODE_ENV] = 'upstream-secret';
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          const demo = profiles.demo!;
          profiles.local = { ...structuredClone(demo), default: false, labels: ['local'] };
          const relayTo = (labels: string[], passcode: boolean): Record<string, unknown> => ({
            ...structuredClone(demo),
            default: false,
            labels,
            upstream: 'est',
            fullcmc: 'passthrough',
            est: {
              url: guarded.baseUrl,
              ra_certificate: identity.certFile,
              ra_key: identity.keyFile,
              trust_anchors: [guarded.rootCaFile],
              ...(passcode ? { username: 'est-ra', passcode: { env: UPSTREAM_PASSCODE_ENV } } : {}),
            },
          });
          profiles.guarded = relayTo(['guarded'], true);
          profiles.unguarded = relayTo(['unguarded'], false);
          demo.upstream = 'est';
          demo.fullcmc = 'passthrough';
          demo.est = {
            url: upstream.baseUrl,
            ra_certificate: identity.certFile,
            ra_key: identity.keyFile,
            trust_anchors: [upstream.rootCaFile],
            timeout_ms: 5000,
          };
        }),
    });
    // A CMC request travels base64 (RFC 7030 §4.3.1); est-ra must not touch a byte of it, line breaks included.
    const body = `${randomBytes(600).toString('base64').replace(/.{64}/g, '$&\r\n')}\r\n`;
    cmcFile = join(dir, 'request.cmc');
    writeFileSync(cmcFile, body);
    cmcSha256 = createHash('sha256').update(body).digest('hex');
  });
  after(async () => {
    await ra.close();
    await upstream.close();
    await guarded.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The test upstream's report: `sha256=… content-type=… client=… authorization=…`. */
  const reportOf = (body: string): Record<string, string> =>
    Object.fromEntries(
      Buffer.from(body, 'base64')
        .toString()
        .split(/ (?=(?:sha256|content-type|client|authorization)=)/)
        .map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)]),
    );

  it("ok curl with the CMC media type: the upstream's answer is relayed, the request reached it byte for byte over the RA identity", async () => {
    const before = await upstream.stats();
    const answer = await curl(ra, '/fullcmc', ['--user', `:${ra.passcode}`, ...CMC_REQUEST, '--data-binary', `@${cmcFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    expect(answer.headers).to.match(/\r\nContent-Type: application\/pkcs7-mime; smime-type=CMC-response\r\n/);
    expect(answer.headers).to.match(/\r\nContent-Transfer-Encoding: base64\r\n/);
    expect(answer.headers, "the upstream's other headers stay behind").not.to.match(/X-Upstream-Secret/i);
    expect(reportOf(answer.body)).to.deep.equal({
      sha256: cmcSha256,
      'content-type': 'application/pkcs7-mime; smime-type=CMC-request',
      client: 'CN=est-ra RA',
      authorization: 'absent', // the device's passcode is est-ra's to check, never sent up
    });
    expect((await upstream.stats()).requests.fullcmc - before.requests.fullcmc).to.equal(1);
    const record = await latestRequest(ra, { show: true });
    expect(record).to.deep.include({ operation: 'fullcmc', outcome: 'issued', status: 200, reason: 'fullcmc relayed; the upstream answered 200', csr: null });
    expect(record!.principal.kind).to.equal('passcode');
  });

  it('ok another spelling of the same media type (case, spacing, quotes) is relayed', async () => {
    const answer = await curl(ra, '/fullcmc', [
      '--user',
      `:${ra.passcode}`,
      '-H',
      'Content-Type: Application/PKCS7-MIME;smime-type="CMC-Request"',
      '--data-binary',
      `@${cmcFile}`,
    ]);
    expect(answer.status, answer.body).to.equal(200);
    expect(reportOf(answer.body)).to.include({ sha256: cmcSha256, 'content-type': 'Application/PKCS7-MIME;smime-type="CMC-Request"' });
  });

  it("ok an upstream that wants est-ra's passcode gets est-ra's, never the device's", async () => {
    const answer = await curl(ra, '/guarded/fullcmc', ['--user', `:${ra.passcode}`, ...CMC_REQUEST, '--data-binary', `@${cmcFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    expect(reportOf(answer.body)).to.include({ sha256: cmcSha256, authorization: 'present' });
  });

  it("fail the upstream refuses est-ra's own credentials: 502 (est-ra's fault), not a 401 the device would answer", async () => {
    const answer = await curl(ra, '/unguarded/fullcmc', ['--user', `:${ra.passcode}`, ...CMC_REQUEST, '--data-binary', `@${cmcFile}`]);
    expect(answer.status).to.equal(502);
    expect(answer.body).to.equal("502 the upstream CA rejected est-ra's own credentials for /fullcmc\n");
    expect(answer.headers).not.to.match(/WWW-Authenticate/i);
    expect(await latestRequest(ra)).to.deep.include({ operation: 'fullcmc', outcome: 'refused', status: 502 });
  });

  it('fail unauthenticated: 401 with the Basic challenge, nothing relayed', async () => {
    const before = await upstream.stats();
    const answer = await curl(ra, '/fullcmc', [...CMC_REQUEST, '--data-binary', `@${cmcFile}`]);
    expect(answer.status).to.equal(401);
    expect(answer.headers).to.match(/\r\nWWW-Authenticate: Basic/i);
    const wrong = await curl(ra, '/fullcmc', ['--user', ':not-the-passcode', ...CMC_REQUEST, '--data-binary', `@${cmcFile}`]);
    expect(wrong.status).to.equal(401);
    expect((await upstream.stats()).requests.fullcmc).to.equal(before.requests.fullcmc);
  });

  it('fail authenticated, but not the CMC media type: 415 with the reason', async () => {
    const answer = await curl(ra, '/fullcmc', ['--user', `:${ra.passcode}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${cmcFile}`]);
    expect(answer.status).to.equal(415);
    expect(answer.body).to.equal('415 fullcmc takes application/pkcs7-mime; smime-type=CMC-request\n');
  });

  it('fail a body over limits.max_body_bytes: 413, as for every operation, nothing relayed', async () => {
    const before = await upstream.stats();
    const large = join(dir, 'large.cmc');
    writeFileSync(large, 'A'.repeat(65_537));
    const answer = await curl(ra, '/fullcmc', ['--user', `:${ra.passcode}`, ...CMC_REQUEST, '--data-binary', `@${large}`]);
    expect(answer.status).to.equal(413);
    expect((await upstream.stats()).requests.fullcmc).to.equal(before.requests.fullcmc);
  });

  it('fail the upstream unreachable: 503 with the reason, recorded with that status', async () => {
    await upstream.stop();
    try {
      const answer = await curl(ra, '/fullcmc', ['--user', `:${ra.passcode}`, ...CMC_REQUEST, '--data-binary', `@${cmcFile}`]);
      expect(answer.status).to.equal(503);
      expect(answer.body).to.match(/^503 the upstream's \/fullcmc cannot be reached: connect ECONNREFUSED/);
      expect(await latestRequest(ra)).to.deep.include({ operation: 'fullcmc', outcome: 'refused', status: 503 });
    } finally {
      await upstream.restart();
    }
  });

  for (const [name, type] of [
    ['the CMC media type', 'application/pkcs7-mime; smime-type=CMC-request'],
    ['a CSR media type', 'application/pkcs10'],
  ] as const) {
    it(`fail a local-ca profile answers 501 with the reason, for ${name}`, async () => {
      const answer = await curl(ra, '/local/fullcmc', ['-H', `Content-Type: ${type}`, '--data-binary', `@${cmcFile}`]);
      expect(answer.status).to.equal(501);
      expect(answer.body).to.equal("501 fullcmc is not supported by profile 'local' (fullcmc: passthrough relays it to an est upstream)\n");
    });
  }
});
