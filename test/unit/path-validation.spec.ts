import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { CertificateView } from '../../src/pki/certificate-view.js';
import { validatePath } from '../../src/pki/path-validation.js';
import { opensslCsr, opensslIssue, opensslSelfSigned } from '../helpers/csr.js';

const CA = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'];
const DEVICE = ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth'];

/** The validator on its own, with openssl-made certificates: the cases a TLS client cannot easily stage. */
describe('path validation: pki/path-validation.ts', function () {
  this.timeout(30_000);
  let dir: string;
  const der = (file: string): Buffer => new X509Certificate(readFileSync(file)).raw;
  const view = (file: string): CertificateView => CertificateView.parse(der(file));
  let root: string;
  let cycleLeaf: string;
  let cycle: Buffer[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-path-unit-'));
    root = (await opensslSelfSigned(dir, 'root', { subject: '/CN=Unit Root', addext: CA.slice(0, 2) })).certFile;
    // Two CAs that certify each other: a loop the path search must leave.
    const aSelf = await opensslSelfSigned(dir, 'a-self', { subject: '/CN=Loop A', addext: CA.slice(0, 2) });
    const bSelf = await opensslSelfSigned(dir, 'b-self', { subject: '/CN=Loop B', addext: CA.slice(0, 2) });
    const a = await opensslCsr(dir, 'a', { subject: '/CN=Loop A', keyArgs: ['-key', aSelf.keyFile] });
    const b = await opensslCsr(dir, 'b', { subject: '/CN=Loop B', keyArgs: ['-key', bSelf.keyFile] });
    const aByB = await opensslIssue(dir, 'a-by-b', { caFile: bSelf.certFile, caKeyFile: bSelf.keyFile, extensions: CA, csr: a });
    const bByA = await opensslIssue(dir, 'b-by-a', { caFile: aSelf.certFile, caKeyFile: aSelf.keyFile, extensions: CA, csr: b });
    cycleLeaf = (await opensslIssue(dir, 'loop-leaf', { subject: '/CN=loop-device', caFile: aSelf.certFile, caKeyFile: aSelf.keyFile, extensions: DEVICE }))
      .certFile;
    cycle = [der(aByB.certFile), der(bByA.certFile)];
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('fail certificates that certify each other in a loop end the search: no path', async () => {
    const result = await validatePath({ certificate: view(cycleLeaf), anchors: [view(root)], intermediates: cycle, now: new Date() });
    expect(result).to.include({ ok: false, code: 'no_path' });
  });

  it('fail a certificate is never its own trust anchor', async () => {
    const result = await validatePath({ certificate: view(root), anchors: [view(root)], now: new Date() });
    expect(result).to.include({ ok: false, code: 'no_path' });
  });

  it('ok bytes that are not a certificate among the intermediates are ignored', async () => {
    const device = await opensslIssue(dir, 'plain-device', { subject: '/CN=plain', caFile: root, caKeyFile: join(dir, 'root.key'), extensions: DEVICE });
    const result = await validatePath({
      certificate: view(device.certFile),
      anchors: [view(root)],
      intermediates: [Buffer.from('3000', 'hex')],
      now: new Date(),
    });
    expect(result.ok).to.equal(true);
    if (result.ok) expect(result.issuer.subject).to.equal('CN=Unit Root');
  });

  it('ok an expired certificate when its validity is the caller’s; refused with its date otherwise', async () => {
    const device = await opensslIssue(dir, 'old-device', { subject: '/CN=old', caFile: root, caKeyFile: join(dir, 'root.key'), extensions: DEVICE, days: 1 });
    const later = new Date(Date.now() + 2 * 86_400_000);
    const input = { certificate: view(device.certFile), anchors: [view(root)], now: later };
    expect((await validatePath({ ...input, validityDecidedByCaller: true })).ok).to.equal(true);
    const refused = await validatePath(input);
    expect(refused).to.include({ ok: false, code: 'expired' });
    if (!refused.ok) expect(refused.reason).to.match(/^certificate expired \d{4}-/);
  });

  it('ok a validated path is remembered only while its certificates are valid: later, the same input is refused as the engine refuses it', async () => {
    const device = await opensslIssue(dir, 'memo-device', { subject: '/CN=memo', caFile: root, caKeyFile: join(dir, 'root.key'), extensions: DEVICE, days: 1 });
    const input = { certificate: view(device.certFile), anchors: [view(root)] };
    const first = await validatePath({ ...input, now: new Date() });
    const again = await validatePath({ ...input, now: new Date() });
    expect(first.ok && again.ok).to.equal(true);
    if (first.ok && again.ok) expect(again.path.map((c) => c.subject)).to.deep.equal(first.path.map((c) => c.subject));
    // Past the device certificate's notAfter the remembered answer no longer applies.
    expect(await validatePath({ ...input, now: new Date(Date.now() + 2 * 86_400_000) })).to.include({ ok: false, code: 'expired' });
    // Another anchor set is another input.
    expect(await validatePath({ ...input, anchors: [view(cycleLeaf)], now: new Date() })).to.include({ ok: false, code: 'no_path' });
  });
});
