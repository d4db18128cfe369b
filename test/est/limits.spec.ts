import { connect as tcpConnect } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { httpsRequest } from '../helpers/https.js';

/** What the server does with a connection: everything it sent until it closed it. */
function untilClosed(socket: TLSSocket | ReturnType<typeof tcpConnect>): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(received));
  });
}

describe('connection limits: slow clients and too many connections', () => {
  let ra: TestEstRa;
  let ca: Buffer;
  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        yaml
          .replace('headers_timeout_ms: 10000', 'headers_timeout_ms: 1000')
          .replace('request_timeout_ms: 30000', 'request_timeout_ms: 2000')
          .replace('max_connections: 1024', 'max_connections: 2'),
    });
    ca = readFileSync(ra.rootCaFile);
  });
  after(async () => ra.close());

  const tlsConnect = (): Promise<TLSSocket> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: ra.port, ca }, () => resolve(socket));
      socket.once('error', reject);
    });

  it('fail a client that stops in the middle of its headers gets 408 and is disconnected', async () => {
    const socket = await tlsConnect();
    const closed = untilClosed(socket);
    socket.write('POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: est-ra\r\nContent-Type: appl');
    expect(await closed).to.match(/^HTTP\/1\.1 408 /);
  });

  it('fail a client that connects and never starts TLS is disconnected', async () => {
    const socket = tcpConnect(ra.port, '127.0.0.1');
    expect(await untilClosed(socket)).to.equal('');
  });

  it('fail beyond max_connections a new connection is refused, and served again once one closes', async () => {
    const held = [await tlsConnect(), await tlsConnect()];
    const refused = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: ra.port, ca });
      socket.once('secureConnect', () => resolve('connected'));
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      socket.once('close', () => resolve('closed'));
    });
    expect(refused).not.to.equal('connected');
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const answer = await httpsRequest(`${ra.url}/.well-known/est/cacerts`, { method: 'GET', ca: ra.rootCaFile });
    expect(answer.status).to.equal(200);
  });
});
