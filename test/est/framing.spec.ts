import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { makeCaChain, type CaChain } from '../helpers/ca-chain.js';
import { opensslCsr, type KeyAndCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { mustRun, run, sh } from '../helpers/run.js';
import { latestRequest } from '../helpers/admin-cli.js';

/**
 * Issue #9 §5: every client reads every answer. The profile's /cacerts is a
 * 3-certificate chain of about 13 KB DER, over 16 KiB of base64 (each CA
 * certificate carries 116 DNS names), and devices enroll RSA-4096 keys, so
 * every answer is far past the 765 DER bytes where one base64 line stops
 * working for OpenSSL's BIO. Not much larger: strongSwan pki 5.9.8 reads no
 * HTTP answer past about 18.2 KB, whatever its framing ("TLS socket second
 * read failed", measured).
 * Clients: curl + `openssl base64 -d` (with and without -A), strongSwan
 * `pki --estca` / `--est`, and Bouncy Castle's EST client (test/java).
 */
const LONG_LABEL = 'devicetrustmanager/IOT_demo/device-group/line-1';
const ALIAS = 'IOT_demo_line-1';
const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
/** 64-character lines, each ended by CRLF; the last one may be shorter. */
const WRAPPED = /^(?:[A-Za-z0-9+/]{64}\r\n)+[A-Za-z0-9+/=]{1,64}\r\n$/;
const SINGLE_LINE = /^[A-Za-z0-9+/=]{1025,}\r\n$/;
const NO_USER_AGENT = ['-H', 'User-Agent:'];

describe('base64 framing: every client reads every answer (3-certificate chain, > 16 KiB of base64, RSA-4096)', function () {
  this.timeout(120_000);
  let dir: string;
  let chain: CaChain;
  let ra: TestEstRa;
  let cacertsDer: Buffer;
  let rsa: KeyAndCsr;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-framing-'));
    chain = await makeCaChain(dir, { sans: 116 });
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          const demo = profiles.demo!;
          demo.labels = [LONG_LABEL, ALIAS];
          demo.local_ca = { certificate: chain.issuingFile, key: chain.issuingKeyFile, chain: [chain.intermediateFile, chain.rootFile] };
          // The same profile pinned to each framing, for clients the User-Agent rule misjudges.
          profiles.wrapped = { ...demo, default: false, labels: ['always-wrapped'], base64_framing: 'wrapped' };
          profiles.single = { ...demo, default: false, labels: ['always-single'], base64_framing: 'single_line' };
        }),
    });
    cacertsDer = await mustRun('bash', [
      '-c',
      `cat "${chain.issuingFile}" "${chain.intermediateFile}" "${chain.rootFile}" | openssl crl2pkcs7 -nocrl -certfile /dev/stdin -outform DER | base64 -w0`,
    ]).then((b64) => Buffer.from(b64, 'base64'));
    rsa = await opensslCsr(ra.dir, 'rsa4096', { subject: '/CN=rsa4096', keyArgs: ['-newkey', 'rsa:4096'] });
  });
  after(async () => {
    await ra.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const verifyIssued = (certFile: string): Promise<string> =>
    mustRun('openssl', ['verify', '-CAfile', chain.rootFile, '-untrusted', chain.untrustedFile, certFile]);
  /** Writes an answer body and decodes it with `openssl base64 -d [-A]`, returning what came out. */
  const opensslDecode = async (body: string, name: string, flags: string): Promise<Buffer> => {
    const file = join(ra.dir, `${name}.b64`);
    writeFileSync(file, body);
    const out = join(ra.dir, `${name}.der`);
    await sh(`openssl base64 -d ${flags} -in ${file} -out ${out}`, ra.dir);
    return readFileSync(out);
  };

  describe('curl and openssl', () => {
    it('ok /cacerts to curl (User-Agent sent): 64-column CRLF lines, Content-Transfer-Encoding, `openssl base64 -d` reads all of it', async () => {
      const answer = await curl(ra, '/cacerts', []);
      expect(answer.status).to.equal(200);
      expect(answer.headers).to.match(/\r\nContent-Transfer-Encoding: base64\r\n/);
      expect(answer.body).to.match(WRAPPED);
      expect(answer.body.length).to.be.at.least(16 * 1024);
      expect((await opensslDecode(answer.body, 'cacerts-wrapped', '')).equals(cacertsDer)).to.equal(true);
      // -A wants one line: it reads nothing of a wrapped body (why the demo prints `openssl base64 -d`).
      expect(await opensslDecode(answer.body, 'cacerts-wrapped-A', '-A')).to.have.length(0);
    });

    it('ok /cacerts without a User-Agent: one line + CRLF, which `openssl base64 -d -A` reads and the BIO without -A cannot', async () => {
      const answer = await curl(ra, '/cacerts', NO_USER_AGENT);
      expect(answer.status).to.equal(200);
      expect(answer.headers).to.match(/\r\nContent-Transfer-Encoding: base64\r\n/);
      expect(answer.body).to.match(SINGLE_LINE);
      expect(answer.body.length, 'strongSwan below reads this very body').to.be.at.least(16 * 1024);
      expect((await opensslDecode(answer.body, 'cacerts-line-A', '-A')).equals(cacertsDer)).to.equal(true);
      expect((await opensslDecode(answer.body, 'cacerts-line', '')).equals(cacertsDer), 'the BIO drops a first line > 1024 characters').to.equal(false);
    });

    it('ok base64_framing pins the framing whatever the User-Agent', async () => {
      const wrapped = await curl(ra, '/always-wrapped/cacerts', NO_USER_AGENT);
      expect(wrapped.body).to.match(WRAPPED);
      const single = await curl(ra, '/always-single/cacerts', []);
      expect(single.body).to.match(SINGLE_LINE);
      expect(Buffer.from(wrapped.body, 'base64').equals(Buffer.from(single.body, 'base64'))).to.equal(true);
    });

    it('ok RSA-4096 simpleenroll to curl: wrapped, Content-Transfer-Encoding, decoded by `openssl base64 -d`, verifies up the 3-certificate chain', async () => {
      const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${rsa.csrPemFile}`]);
      expect(answer.status, answer.body).to.equal(200);
      expect(answer.headers).to.match(/\r\nContent-Transfer-Encoding: base64\r\n/);
      expect(answer.body).to.match(WRAPPED);
      const p7 = await opensslDecode(answer.body, 'rsa-enroll', '');
      expect(p7.length).to.be.greaterThan(765);
      const cert = join(ra.dir, 'rsa-enroll.pem');
      await mustRun('openssl', ['pkcs7', '-inform', 'DER', '-in', join(ra.dir, 'rsa-enroll.der'), '-print_certs', '-out', cert]);
      expect(await verifyIssued(cert)).to.contain(': OK');
    });

    it('ok /csrattrs carries Content-Transfer-Encoding', async () => {
      const answer = await curl(ra, '/csrattrs', []);
      expect(answer.status).to.equal(200);
      expect(answer.headers).to.match(/\r\nContent-Type: application\/csrattrs\r\nContent-Length: \d+\r\nContent-Transfer-Encoding: base64\r\n/);
    });

    it('ok a single-segment alias and the multi-segment label select the same profile', async () => {
      const viaAlias = await curl(ra, `/${ALIAS}/cacerts`, []);
      const viaLabel = await curl(ra, `/${LONG_LABEL}/cacerts`, []);
      expect(viaAlias.status).to.equal(200);
      expect(viaAlias.body).to.equal(viaLabel.body);
      const device = await opensslCsr(ra.dir, 'alias-device');
      const enrolled = await curl(ra, `/${ALIAS}/simpleenroll`, ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
      expect(enrolled.status, enrolled.body).to.equal(200);
      const latest = await latestRequest(ra);
      expect(latest).to.include({ outcome: 'issued', profile: 'demo' });
    });
  });

  describe('strongSwan pki 5.9.8 (no User-Agent: one line)', () => {
    const pki = (args: string[]): Promise<string> => mustRun('pki', [...args, '--url', `${ra.url}/`, '--cacert', ra.rootCaFile]);

    it('ok pki --estca reads the 3-certificate chain (> 16 KiB on one line)', async () => {
      const out = join(ra.dir, 'ss-ca.pem');
      const said = await pki(['--estca', '--caout', out, '--outform', 'pem', '--force']);
      const written = readdirSync(ra.dir)
        .filter((f) => f.startsWith('ss-ca'))
        .map((f) => readFileSync(join(ra.dir, f), 'utf8'))
        .join('');
      const subjects = await mustRun('bash', ['-c', 'while openssl x509 -noout -subject -nameopt RFC2253 2>/dev/null; do :; done'], { input: written });
      expect(subjects, said).to.contain('CN=chain issuing CA').and.to.contain('CN=chain intermediate CA').and.to.contain('CN=chain root CA');
    });

    it('ok pki --est enrolls an RSA-4096 key and re-enrolls with it; both verify up the chain', async () => {
      const first = join(ra.dir, 'ss-rsa.pem');
      writeFileSync(first, await pki(['--est', '--in', rsa.csrDerFile, '--userpass', `device:${ra.passcode}`, '--outform', 'pem']));
      expect(await verifyIssued(first)).to.contain(': OK');
      const renewed = join(ra.dir, 'ss-rsa-renewed.pem');
      writeFileSync(renewed, await pki(['--est', '--in', rsa.csrDerFile, '--cert', first, '--key', rsa.keyFile, '--outform', 'pem']));
      expect(await verifyIssued(renewed)).to.contain(': OK');
    });
  });

  describe("Bouncy Castle's EST client (Debian libbcpkix-java 1.72, Java 17)", () => {
    const classpath = ['bcprov', 'bcpkix', 'bcutil'].map((jar) => `/usr/share/java/${jar}.jar`).join(':');
    let classes: string;
    let trustFile: string;
    const bc = (operation: string, args: string[]): Promise<string> =>
      mustRun('java', ['-cp', `${classes}:${classpath}`, 'BcEstClient', `127.0.0.1:${ra.port}`, ALIAS, trustFile, operation, ...args]);

    before(async () => {
      classes = join(dir, 'java');
      const source = fileURLToPath(new URL('../../../test/java/BcEstClient.java', import.meta.url));
      await mustRun('javac', ['-d', classes, '-cp', classpath, source]);
      trustFile = ra.rootCaFile;
    });

    it('ok BC refuses a multi-segment label before connecting: why the alias exists', async () => {
      const result = await run('java', ['-cp', `${classes}:${classpath}`, 'BcEstClient', `127.0.0.1:${ra.port}`, LONG_LABEL, trustFile, 'csrattrs']);
      expect(result.code).to.equal(1);
      expect(result.stdout).to.contain('contains invalid characters');
    });

    it('ok getCACerts reads the 3-certificate chain', async () => {
      const out = join(ra.dir, 'bc-cacerts.pem');
      expect((await bc('cacerts', [out])).trim()).to.equal('cacerts 3');
      const text = await mustRun('bash', ['-c', `openssl crl2pkcs7 -nocrl -certfile ${out} | openssl pkcs7 -print_certs -noout`]);
      expect(text).to.contain('CN = chain issuing CA').and.to.contain('CN = chain intermediate CA').and.to.contain('CN = chain root CA');
    });

    it("ok getCSRAttributes reads the profile's request: key algorithms, commonName, signatures", async () => {
      const [word, ...oids] = (await bc('csrattrs', [])).trim().split(' ');
      expect(word).to.equal('csrattrs');
      // Bouncy Castle lists each OID once, attribute types and bare OIDs alike, in its own order.
      expect(oids.sort()).to.deep.equal(
        [
          '1.2.840.113549.1.1.1',
          '1.2.840.10045.2.1',
          '1.3.101.112',
          '2.5.4.3',
          '1.2.840.113549.1.1.11',
          '1.2.840.10045.4.3.2',
          '1.2.840.10045.4.3.3',
          '1.2.840.10045.4.3.4',
        ].sort(),
      );
    });

    it('ok simpleEnroll with HTTP Basic after the 401, then simpleReenroll with the TLS client certificate (RSA-4096)', async () => {
      const enrolled = join(ra.dir, 'bc-enrolled.pem');
      const challenges = (): number => ra.logs.filter((line) => /"operation":"simpleenroll"/.test(line) && /"status":401/.test(line)).length;
      const before = challenges();
      expect((await bc('enroll', [rsa.csrDerFile, 'device', ra.passcode, enrolled])).trim()).to.equal('enroll CN=rsa4096');
      expect(challenges() - before, 'BC asks first without credentials, answers the Basic challenge').to.equal(1);
      expect(await verifyIssued(enrolled)).to.contain(': OK');
      const text = await mustRun('openssl', ['x509', '-in', enrolled, '-noout', '-text']);
      expect(text)
        .to.contain('Subject: CN = rsa4096')
        .and.to.contain('Public-Key: (4096 bit)')
        .and.to.contain('Issuer: O = est-ra tests, CN = chain issuing CA');

      const renewed = join(ra.dir, 'bc-renewed.pem');
      expect((await bc('reenroll', [rsa.csrDerFile, enrolled, rsa.keyFile, renewed])).trim()).to.equal('reenroll CN=rsa4096');
      expect(await verifyIssued(renewed)).to.contain(': OK');
      const latest = await latestRequest(ra);
      expect(latest).to.include({ outcome: 'issued', operation: 'simplereenroll' });
    });
  });
});
