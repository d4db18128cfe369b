import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig, editProfile, forwardingProfile } from '../helpers/config.js';
import { opensslCsr, withBrokenSignature } from '../helpers/csr.js';
import { certsFromP7, curl, x509Field } from '../helpers/clients.js';
import { makeRaIdentity } from '../helpers/upstream.js';
import { mustRun } from '../helpers/run.js';
import { PQC_SETS, pqcCsr, pqcKeyPair, pqcSpki, type PqcSet } from '../helpers/pqc-csr.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const UPSTREAM_PASSCODE_ENV = 'EST_RA_TEST_PQC_UPSTREAM_PASSCODE';
/** ML-DSA of each level, SLH-DSA of each family (SHA2, SHAKE) with an s and an f set; SLHDSA-SHA2-128f stays out of the profile. */
const ALLOWED: readonly PqcSet[] = ['MLDSA-44', 'MLDSA-65', 'MLDSA-87', 'SLHDSA-SHA2-128s', 'SLHDSA-SHAKE-128f'];

/**
 * Issue #12 part 3: devices with post-quantum keys enroll with curl; the
 * local CA certifies their key with its own classic signature, which
 * OpenSSL 3.0 verifies although it cannot load the key.
 */
let javaClasses: string | undefined;

/**
 * The JDK's PKIX path validation (test/java/PkixValidate.java), root as the
 * trust anchor: `openssl verify` (OpenSSL 3.0) cannot validate a path whose
 * leaf key it cannot load, whatever signs it (measured with 3.0.22:
 * X509_self_signed "unable to get certs public key").
 */
async function pkixValidate(rootFile: string, ...path: string[]): Promise<string> {
  if (!javaClasses) {
    javaClasses = mkdtempSync(join(tmpdir(), 'est-ra-pkix-'));
    await mustRun('javac', ['-d', javaClasses, fileURLToPath(new URL('../../../test/java/PkixValidate.java', import.meta.url))]);
  }
  return (await mustRun('java', ['-cp', javaClasses, 'PkixValidate', rootFile, ...path])).trim();
}

/** OpenSSL's check (X509_verify, in-process) of the certificate's classic signature with its issuer's key. */
async function caSignatureVerifies(certFile: string, issuerFile: string): Promise<boolean> {
  const issuer = new X509Certificate(readFileSync(issuerFile));
  const certificate = new X509Certificate(readFileSync(certFile));
  return certificate.checkIssued(issuer) && certificate.verify(issuer.publicKey);
}

after(() => {
  if (javaClasses) rmSync(javaClasses, { recursive: true, force: true });
});

describe('#12 - post-quantum keys (ML-DSA, SLH-DSA) enroll on a profile that allows them', function () {
  this.timeout(120_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        editProfile(yaml, 'demo', (profile) => {
          profile.allowed_key_types = ['p_256', 'rsa_1024', ...ALLOWED.map((set) => (set === 'MLDSA-65' ? 'ML-DSA-65' : set))];
        }),
    });
  });
  after(async () => ra.close());

  const post = (file: string) => curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${file}`]);
  const postDer = (name: string, der: Buffer) => {
    const file = join(ra.dir, `${name}.der`);
    writeFileSync(file, der);
    return post(file);
  };

  for (const set of ALLOWED) {
    it(`#12 - ok a ${set} CSR is certified: the certificate carries its key, digitalSignature only, OpenSSL verifies the CA's signature, the JDK the path`, async () => {
      const key = pqcKeyPair(set);
      const answer = await postDer(set, pqcCsr(key, { subject: `CN=pqc-${set}` }));
      expect(answer.status, answer.body).to.equal(200);
      const cert = await certsFromP7(ra.dir, answer.body, set);
      expect(await caSignatureVerifies(cert, ra.issuingCaFile), 'OpenSSL X509_verify with the issuing CA key').to.equal(true);
      expect(await pkixValidate(ra.rootCaFile, cert, ra.issuingCaFile)).to.match(/^OK /);
      const text = await x509Field(cert, '-text');
      expect(text).to.contain(`Public Key Algorithm: ${PQC_SETS[set].oid}`);
      expect(text).to.match(/X509v3 Key Usage: critical\n\s+Digital Signature\n/);
      expect(await x509Field(cert, '-subject')).to.equal(`subject=CN=pqc-${set}`);
      // The certificate's SubjectPublicKeyInfo is the CSR's, byte for byte.
      expect(new X509Certificate(readFileSync(cert)).raw.includes(pqcSpki(set, key.publicKey))).to.equal(true);
    });
  }

  it('#12 - fail a forged ML-DSA CSR (signed by another key) and a flipped bit are refused 400 with the reason', async () => {
    const forged = await postDer('forged', pqcCsr(pqcKeyPair('MLDSA-65'), { signer: pqcKeyPair('MLDSA-65') }));
    expect([forged.status, forged.body]).to.deep.equal([400, '400 CSR signature does not verify with its MLDSA-65 key (no proof of possession)\n']);
    const flipped = await postDer('flipped', withBrokenSignature(pqcCsr(pqcKeyPair('MLDSA-44'))));
    expect([flipped.status, flipped.body]).to.deep.equal([400, '400 CSR signature does not verify with its MLDSA-44 key (no proof of possession)\n']);
  });

  it('#12 - fail a PQC key type the profile does not list is refused 403, naming the type', async () => {
    const answer = await postDer('not-allowed', pqcCsr(pqcKeyPair('SLHDSA-SHA2-128f')));
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal(
      `403 key type SLHDSA-SHA2-128f not allowed by profile (allowed: p_256, rsa_1024, MLDSA-44, MLDSA-65, MLDSA-87, SLHDSA-SHA2-128s, SLHDSA-SHAKE-128f)\n`,
    );
  });

  it('#12 - ok rsa_1024 is accepted where the profile names it', async () => {
    const csr = await opensslCsr(ra.dir, 'rsa1024', { keyArgs: ['-newkey', 'rsa:1024'] });
    const answer = await post(csr.csrPemFile);
    expect(answer.status, answer.body).to.equal(200);
  });
});

describe('#12 - post-quantum keys where the profile does not list them, and through an upstream EST server', function () {
  this.timeout(120_000);
  let dir: string;
  let back: TestEstRa;
  let front: TestEstRa;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-pqc-'));
    const identity = await makeRaIdentity(dir, { cmcRa: true });
    // The upstream: est-ra with its local CA, allowing ML-DSA-65, trusting the front RA's certificate (RFC 7030 §3.7).
    back = await startEstRa({
      editConfig: (yaml) =>
        editProfile(
          editConfig(yaml, (config) => {
            (config.authentication_policies as Record<string, Record<string, unknown>>).demo!.downstream_ra_cas = [identity.caFile];
          }),
          'demo',
          (profile) => {
            profile.allowed_key_types = ['p_256', 'MLDSA-65'];
          },
        ),
    });
    process.env[UPSTREAM_PASSCODE_ENV] = back.passcode;
    // The RA in front: its own default profile (no PQC type), and a profile forwarding to the upstream.
    front = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          profiles.forward = forwardingProfile(
            profiles.demo,
            'forward',
            {
              url: `${back.url}/.well-known/est`,
              ra_certificate: identity.certFile,
              ra_key: identity.keyFile,
              trust_anchors: [back.rootCaFile],
              username: 'est-ra',
              passcode: { env: UPSTREAM_PASSCODE_ENV },
              timeout_ms: 5000,
            },
            { allowed_key_types: ['MLDSA-65'] },
          );
        }),
    });
  });
  after(async () => {
    await front.close();
    await back.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (ra: TestEstRa, path: string, name: string, der: Buffer) => {
    const file = join(ra.dir, `${name}.der`);
    writeFileSync(file, der);
    return curl(ra, path, ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${file}`]);
  };

  it('#12 - fail the default profile (no PQC type, no rsa_1024) refuses an ML-DSA key and an RSA-1024 key with 403', async () => {
    const mldsa = await post(front, '/simpleenroll', 'default-mldsa', pqcCsr(pqcKeyPair('MLDSA-65')));
    expect(mldsa.status).to.equal(403);
    expect(mldsa.body).to.match(/^403 key type MLDSA-65 not allowed by profile \(allowed: rsa_2048, /);
    const rsa = await opensslCsr(front.dir, 'rsa1024', { keyArgs: ['-newkey', 'rsa:1024'] });
    const answer = await curl(front, '/simpleenroll', ['--user', `:${front.passcode}`, ...PKCS10, '--data-binary', `@${rsa.csrPemFile}`]);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.match(/^403 key type rsa_1024 not allowed by profile/);
  });

  it('#12 - ok an ML-DSA-65 CSR forwarded upstream unchanged comes back certified for its key', async () => {
    const key = pqcKeyPair('MLDSA-65');
    const answer = await post(front, '/forward/simpleenroll', 'forward-mldsa', pqcCsr(key, { subject: 'CN=forwarded-pqc' }));
    expect(answer.status, answer.body).to.equal(200);
    const cert = await certsFromP7(front.dir, answer.body, 'forwarded');
    expect(await pkixValidate(back.rootCaFile, cert, back.issuingCaFile)).to.match(/^OK /);
    expect(await x509Field(cert, '-text')).to.contain(`Public Key Algorithm: ${PQC_SETS['MLDSA-65'].oid}`);
  });
});
