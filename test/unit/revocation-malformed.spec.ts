import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { RevocationChecker } from '../../src/auth/revocation.js';
import { CertificateView } from '../../src/pki/certificate-view.js';
import { opensslIssue, opensslSelfSigned } from '../helpers/csr.js';

/**
 * Issue #9 §4: OCSP answers, CRLs and the certificate extensions that name
 * them are untrusted too. Malformed ones make the status unknown with a
 * reason (the mode then decides: soft_fail allows, hard_fail refuses with
 * 403); they never throw out of the checker (a 500).
 */
describe('#9 - revocation: malformed OCSP answers, CRLs and extensions are a reasoned "unknown", never a crash', () => {
  let dir: string;
  let server: Server;
  let url: string;
  let ca: CertificateView;
  let leaf: CertificateView;
  let badExtensions: CertificateView;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-revocation-malformed-'));
    server = createServer((_req, res) => res.end(Buffer.from('3003020101', 'hex')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const caFiles = await opensslSelfSigned(dir, 'ca', {
      subject: '/CN=Revocation CA',
      addext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'],
    });
    ca = CertificateView.parse(new X509Certificate(readFileSync(caFiles.certFile)).raw);
    const make = async (name: string, extensions: string[]): Promise<CertificateView> =>
      CertificateView.parse(
        new X509Certificate(readFileSync((await opensslIssue(dir, name, { caFile: caFiles.certFile, caKeyFile: caFiles.keyFile, extensions })).certFile)).raw,
      );
    leaf = await make('leaf', ['extendedKeyUsage=clientAuth']);
    // An authorityInfoAccess that is DER but not what RFC 5280 §4.2.2.1 defines (OpenSSL reads it only when asked).
    badExtensions = await make('bad', ['extendedKeyUsage=clientAuth', '1.3.6.1.5.5.7.1.1=DER:30:03:02:01:01']);
    writeFileSync(join(dir, 'garbage.crl'), 'this is not a CRL');
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const checker = (settings: { crlFiles?: string[]; responderUrl?: string; useCrlDistributionPoints?: boolean }): RevocationChecker =>
    new RevocationChecker(
      {
        mode: 'hard_fail',
        crlFiles: settings.crlFiles ?? [],
        useCrlDistributionPoints: settings.useCrlDistributionPoints ?? false,
        ocsp: { enabled: true, responderUrl: settings.responderUrl },
        timeoutMs: 5000,
      },
      () => new Date(),
    );

  it('fail an OCSP responder answering bytes that are not an OCSPResponse, and a CRL file that is not a CRL: unknown, both named', async () => {
    const status = await checker({ responderUrl: url, crlFiles: [join(dir, 'garbage.crl')] }).check(leaf, ca);
    expect(status.status).to.equal('unknown');
    expect(status.status === 'unknown' && status.reason).to.match(/^OCSP http:\/\/127\.0\.0\.1:\d+\/: .+; CRL .*garbage\.crl: .+$/);
  });

  it('fail a malformed authorityInfoAccess extension: unknown, with the reason', async () => {
    const status = await checker({ useCrlDistributionPoints: true }).check(badExtensions, ca);
    expect(status).to.deep.equal({ status: 'unknown', reason: 'malformed authorityInfoAccess extension; no OCSP responder' });
  });

  it('fail a malformed cRLDistributionPoints extension makes the certificate unreadable (OpenSSL marks it invalid too)', async () => {
    const files = await opensslIssue(dir, 'bad-crldp', {
      caFile: join(dir, 'ca.crt'),
      caKeyFile: join(dir, 'ca.key'),
      extensions: ['2.5.29.31=DER:30:03:02:01:01'],
    });
    expect(() => CertificateView.parse(new X509Certificate(readFileSync(files.certFile)).raw)).to.throw('DistributionPoint is not a SEQUENCE');
  });
});

/**
 * Issue #9: CertificateView.isCa read basicConstraints alone; OpenSSL
 * (X509_check_ca) also wants keyCertSign where there is a keyUsage and
 * refuses a pathLenConstraint without cA. isCa is now OpenSSL's answer.
 */
describe('#9 - CertificateView.isCa agrees with OpenSSL', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-isca-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [name, addext, expected] of [
    ['CA:TRUE with keyCertSign', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'], true],
    ['CA:TRUE without a keyUsage', ['basicConstraints=critical,CA:TRUE'], true],
    [
      'CA:TRUE whose keyUsage lacks keyCertSign (basicConstraints alone said CA)',
      ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature'],
      false,
    ],
    ['CA:FALSE', ['basicConstraints=critical,CA:FALSE'], false],
    ['pathLenConstraint without cA', ['basicConstraints=critical,DER:30:03:02:01:00'], false],
  ] as const) {
    it(`ok ${name}: ${expected}`, async () => {
      const files = await opensslSelfSigned(dir, name.replace(/\W+/g, '-'), { subject: '/CN=isCa', addext: [...addext] });
      const der = new X509Certificate(readFileSync(files.certFile)).raw;
      expect(CertificateView.parse(der).isCa()).to.equal(expected);
      expect(new X509Certificate(der).ca).to.equal(expected);
    });
  }

  it('fail a negative pathLenConstraint, which OpenSSL marks invalid, does not parse (and OpenSSL says not a CA)', async () => {
    const files = await opensslSelfSigned(dir, 'negative-pathlen', { subject: '/CN=isCa', addext: ['basicConstraints=critical,DER:30:06:01:01:ff:02:01:ff'] });
    const der = new X509Certificate(readFileSync(files.certFile)).raw;
    expect(() => CertificateView.parse(der)).to.throw('negative pathLenConstraint');
    expect(new X509Certificate(der).ca).to.equal(false);
  });
});
