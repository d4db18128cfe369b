import { readFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import { expect } from 'chai';
import forge from 'node-forge';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editProfile } from '../helpers/config.js';

type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/**
 * A real TLS client that computes its connection's channel binding (as a
 * device's EST stack would), puts it in a node-forge CSR's challengePassword,
 * and enrolls over that same connection.
 */
async function enrollBound(ra: TestEstRa, version: TlsVersion, challenge: (binding: Buffer) => string | undefined): Promise<{ status: number; body: string }> {
  const socket: TLSSocket = connect({ host: '127.0.0.1', port: ra.port, ca: readFileSync(ra.rootCaFile), minVersion: version, maxVersion: version });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  // The client's view: its own Finished comes first in a full TLS 1.2 handshake (RFC 5929); TLS 1.3 exports (RFC 9266).
  const binding = version === 'TLSv1.3' ? socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)) : socket.getFinished()!;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = KEYS.publicKey;
  csr.setSubject([{ name: 'commonName', value: `bound-${version.replace(/\W/g, '')}` }]);
  const password = challenge(binding);
  if (password !== undefined) csr.setAttributes([{ name: 'challengePassword', value: password }]);
  csr.sign(KEYS.privateKey, forge.md.sha256.create());
  const body = forge.pki.certificationRequestToPem(csr);
  const authorization = Buffer.from(`:${ra.passcode}`).toString('base64');
  socket.write(
    `POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic ${authorization}\r\nContent-Type: application/pkcs10\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('end', () => resolve(text));
  });
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) };
}

const KEYS = forge.pki.rsa.generateKeyPair(2048);

describe('channel binding (RFC 7030 §3.5): tls-unique on TLS 1.2, tls-exporter on TLS 1.3', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  before(async () => {
    ra = await startEstRa({ editConfig: (yaml) => editProfile(yaml, 'demo', (profile) => (profile.channel_binding = true)) });
  });
  after(async () => ra.close());

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const type = version === 'TLSv1.3' ? 'tls-exporter' : 'tls-unique';
    it(`ok ${version}: the CSR carries the connection's ${type}`, async () => {
      const answer = await enrollBound(ra, version, (binding) => binding.toString('base64'));
      expect(answer.status, answer.body).to.equal(200);
    });

    it(`fail ${version}: a binding of another connection (a replayed CSR)`, async () => {
      const answer = await enrollBound(ra, version, () => Buffer.alloc(version === 'TLSv1.3' ? 32 : 12, 7).toString('base64'));
      expect(answer.status).to.equal(403);
      expect(answer.body).to.equal(`403 the CSR's challengePassword must be the base64 ${type} of this TLS connection (RFC 7030 §3.5)\n`);
    });
  }

  it('fail a CSR without challengePassword', async () => {
    const answer = await enrollBound(ra, 'TLSv1.3', () => undefined);
    expect(answer.status).to.equal(403);
  });
});
