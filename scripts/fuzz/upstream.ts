/**
 * The fuzzer's upstream: a small HTTPS server in the fuzz process that est-ra
 * forwards to (`upstream: est` profiles), answering with hostile variants of
 * a valid answer. The case chooses the answer: its CSR's common name is
 * `fz<answer>-<case>`, so the status est-ra must give the device is known
 * per case (ANSWERS[answer].allowed). A request seen a second time (the
 * retry worker forwarding a queued or pending request again) is answered
 * with a good certificate, so queues drain and the health circuit breaker
 * closes again.
 *
 * Labels: `up` (answers that are not an outage: est-ra answers 200, 202 or
 * 502 and keeps forwarding), `flaky` (outages: 5xx, resets, hangs, short or
 * huge bodies; est-ra queues, answers 202 and opens its breaker), `cacerts`
 * (its /cacerts turns hostile after the first answer; est-ra refreshes it
 * every second and must keep serving what it has).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { buildCertsOnly } from '../../src/pki/certs-only.js';
import { objectIdentifier, sequence, set } from '../../src/pki/der.js';
import { caCertificate, certificate, EXTENSIONS, name, newKey, subjectAndKey, tbsFields } from './pki.js';
import { int, mutate, pick, randomBytes, type Random } from './random.js';

export interface AnswerKind {
  readonly name: string;
  /** Served under the label `flaky` (an outage: est-ra queues and opens its breaker) rather than `up`. */
  readonly flaky: boolean;
  /** What est-ra may answer the device. */
  readonly allowed: readonly number[];
}

const kind = (name: string, allowed: readonly number[], flaky = false): AnswerKind => ({ name, flaky, allowed });

/** docs/errors.md: a bad answer is 502, an outage 202 (queued), a 202 upstream 202; never 500, never a dropped connection. */
export const ANSWERS: readonly AnswerKind[] = [
  kind('good', [200]),
  kind('good raw DER', [200]),
  kind('good PEM', [200]),
  kind('good wrong content type', [200]),
  kind('good with chain', [200]),
  kind('good gzip', [200]),
  kind('good chunked', [200]),
  kind('good slow', [200]),
  kind('mutated PKCS#7', [200, 502]),
  kind('mutated certificate re-signed', [200, 502]),
  kind('truncated base64', [200, 502]),
  kind('base64 with junk', [200, 502]),
  kind('garbage text', [502]),
  kind('empty 200', [502]),
  kind('204', [502]),
  kind('202 odd Retry-After', [202]),
  kind('4xx', [502]),
  kind('401/403', [502]),
  kind('3xx', [502]),
  kind('wrong key', [502]),
  kind('other CA', [502]),
  kind('expired certificate', [502]),
  kind('no certificates', [502]),
  kind('many certificates', [200, 502]),
  kind('large body (600 KB)', [502]),
  kind('5xx', [202], true),
  kind('408/429', [202], true),
  kind('connection reset', [202], true),
  kind('hang past the timeout', [202], true),
  kind('huge body (1.5 MB)', [202], true),
  kind('short body then close', [202], true),
  kind('gzip garbage', [202, 502], true),
  kind('good (flaky label)', [200, 202], true),
];

export interface FuzzUpstream {
  readonly url: string;
  /** Answers served, by kind (enroll answers by ANSWERS name; csrattrs and cacerts by theirs). */
  readonly served: Map<string, number>;
  close(): Promise<void>;
}

const RETRY_AFTERS = [
  '0',
  '-1',
  '',
  '1.5',
  'abc',
  '99999999999999999999',
  'Wed, 21 Oct 2015 07:28:00 GMT',
  'Fri, 31 Dec 9999 23:59:59 GMT',
  '1, 2',
  '9'.repeat(400),
  '1',
];
const TAG = /fz(\d+)-c(w?\d+)/;

export async function startFuzzUpstream(options: { cert: string; key: string; random: Random }): Promise<FuzzUpstream> {
  const { random } = options;
  const rootKey = newKey();
  const issuingKey = newKey();
  const root = caCertificate('fz upstream root', rootKey);
  const issuing = caCertificate('fz upstream issuing', issuingKey, { subject: name('fz upstream root'), key: rootKey.privateKey }, 0);
  const otherCa = newKey();
  const cacerts = buildCertsOnly([issuing, root]);
  // Answers that cost milliseconds to make are made once.
  const spareKey = newKey();
  const extraCas = Array.from({ length: 50 }, (_, i) => caCertificate(`fz extra ${i}`, otherCa));
  const largeBody = Buffer.from(randomBytes(random, 450_000).toString('base64'));
  const goodCsrAttrs = sequence(
    objectIdentifier('1.2.840.113549.1.9.7'),
    sequence(objectIdentifier('1.2.840.10045.2.1'), set(objectIdentifier('1.2.840.10045.3.1.7'))),
  );
  const hugeCsrAttrs = sequence(...Array.from({ length: 5000 }, (_, i) => objectIdentifier(`1.2.3.${i}`)));
  const served = new Map<string, number>();
  const count = (what: string): void => void served.set(what, (served.get(what) ?? 0) + 1);
  /** Cases whose request est-ra may forward again (queued or pending): the next forward gets a certificate. */
  const waiting = new Set<string>();
  let cacertsServed = false;

  const issue = (csr: Buffer, variant: { key?: Buffer; signer?: 'other'; expired?: boolean } = {}): Buffer => {
    const { subject, spki } = subjectAndKey(csr, 'csr');
    const now = Date.now();
    return certificate(
      tbsFields({
        issuer: variant.signer === 'other' ? name('fz other CA') : name('fz upstream issuing'),
        subject,
        spki: variant.key ?? spki,
        notBefore: new Date(now - (variant.expired ? 800 : 1) * 86_400_000),
        notAfter: new Date(now + (variant.expired ? -86_400_000 : 365 * 86_400_000)),
        extensions: [EXTENSIONS.endEntity(), EXTENSIONS.keyUsage(0x80), EXTENSIONS.clientAuth()],
      }),
      variant.signer === 'other' ? otherCa.privateKey : issuingKey.privateKey,
    );
  };

  const enroll = (res: ServerResponse, answer: AnswerKind, csr: Buffer): void => {
    const good = (): Buffer => buildCertsOnly([issue(csr)]);
    switch (answer.name) {
      case 'good':
      case 'good (flaky label)':
        return base64(res, good());
      case 'good raw DER':
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime; smime-type=certs-only' }, good());
      case 'good PEM':
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime' }, Buffer.from(`-----BEGIN PKCS7-----\n${wrap(good())}-----END PKCS7-----\n`));
      case 'good wrong content type':
        return base64(res, good(), pick(random, ['text/html', 'application/json', '', 'application/pkcs7-mime; smime-type=CMC-response', 'x/y; a="']));
      case 'good with chain':
        return base64(res, buildCertsOnly([root, issue(csr), issuing]));
      case 'good gzip':
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime', 'Content-Encoding': 'gzip' }, gzipSync(wrap(good())));
      case 'good chunked':
        res.writeHead(200, { 'Content-Type': 'application/pkcs7-mime' });
        for (const line of wrap(good()).split('\n')) res.write(`${line}\n`);
        res.end();
        return;
      case 'good slow':
        setTimeout(() => base64(res, good()), 20 + int(random, 200));
        return;
      case 'mutated PKCS#7':
        return base64(res, mutate(random, good()));
      case 'mutated certificate re-signed': {
        const fields = tbsFields({
          ...subjectAndKey(csr, 'csr'),
          issuer: name('fz upstream issuing'),
          notBefore: new Date(),
          notAfter: new Date(Date.now() + 86_400_000),
          extensions: [],
        });
        const what = int(random, 4);
        if (what === 0) fields.serial = Buffer.from([0x02, 0x00]);
        if (what === 1) fields.extensions = [EXTENSIONS.ca(), EXTENSIONS.keyUsage(0xff)];
        if (what === 2) fields.notAfter = Buffer.from('180f3939393931323331323335393539', 'hex');
        if (what === 3) fields.issuer = sequence(set(sequence(objectIdentifier('2.5.4.3'), Buffer.from([0x1e, 0x01, 0x41]))));
        return base64(res, buildCertsOnly([certificate(fields, issuingKey.privateKey)]));
      }
      case 'truncated base64': {
        const text = wrap(good());
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime' }, Buffer.from(text.slice(0, int(random, text.length))));
      }
      case 'base64 with junk': {
        const text = wrap(good());
        const at = int(random, text.length);
        const junk = pick(random, ['\0', '\0\0\0', '-', '!', ' \t', '=', '====', '\r\r\n', '\u00e9', '-----END PKCS7-----']);
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime' }, Buffer.from(`${text.slice(0, at)}${junk}${text.slice(at)}`, 'latin1'));
      }
      case 'garbage text':
        return send(
          res,
          200,
          { 'Content-Type': 'application/pkcs7-mime' },
          pick(random, [Buffer.from('<html>oops</html>'), randomBytes(random, int(random, 2000))]),
        );
      case 'empty 200':
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime' }, Buffer.alloc(0));
      case '204':
        return send(res, 204, {}, Buffer.alloc(0));
      case '202 odd Retry-After':
        return send(
          res,
          202,
          { 'Retry-After': pick(random, RETRY_AFTERS), 'Content-Type': 'text/plain' },
          Buffer.from(pick(random, ['pending\n', '', '\u0000\u0001', 'x'.repeat(5000)]), 'latin1'),
        );
      case '4xx':
        return send(
          res,
          pick(random, [400, 404, 405, 409, 410, 413, 415, 418, 422, 451, 499]),
          { 'Content-Type': 'text/plain' },
          pick(random, [Buffer.from('refused\r\nsecond line'), randomBytes(random, 300), Buffer.alloc(0)]),
        );
      case '401/403':
        return send(res, pick(random, [401, 403]), { 'WWW-Authenticate': 'Basic realm="x"' }, Buffer.from('no'));
      case '3xx':
        return send(
          res,
          pick(random, [301, 302, 303, 307, 308]),
          { Location: pick(random, ['https://127.0.0.1:1/', '/x', 'javascript:alert(1)']) },
          Buffer.from('moved'),
        );
      case 'wrong key':
        return base64(res, buildCertsOnly([issue(csr, { key: spareKey.spki })]));
      case 'other CA':
        return base64(res, buildCertsOnly([issue(csr, { signer: 'other' })]));
      case 'expired certificate':
        return base64(res, buildCertsOnly([issue(csr, { expired: true })]));
      case 'no certificates':
        return base64(res, buildCertsOnly([]));
      case 'many certificates':
        return base64(res, buildCertsOnly([...extraCas.slice(0, 1 + int(random, 50)), issue(csr)]));
      case 'large body (600 KB)':
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime' }, largeBody);
      case '5xx':
        return send(res, pick(random, [500, 502, 503, 504, 599]), { 'Content-Type': 'text/plain' }, Buffer.from('down'));
      case '408/429':
        return send(res, pick(random, [408, 429]), { 'Retry-After': pick(random, RETRY_AFTERS) }, Buffer.alloc(0));
      case 'connection reset':
        res.socket?.destroy();
        return;
      case 'hang past the timeout':
        return; // est-ra's timeout_ms for the flaky profile ends it
      case 'huge body (1.5 MB)':
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime' }, Buffer.alloc(1_500_000, 0x41));
      case 'short body then close':
        res.writeHead(200, { 'Content-Type': 'application/pkcs7-mime', 'Content-Length': '5000' });
        res.write(wrap(good()).slice(0, 100));
        setImmediate(() => res.socket?.destroy());
        return;
      case 'gzip garbage':
        return send(res, 200, { 'Content-Type': 'application/pkcs7-mime', 'Content-Encoding': 'gzip' }, randomBytes(random, 200));
      default:
        throw new Error(`no answer for ${answer.name}`);
    }
  };

  const csrattrs = (res: ServerResponse): void => {
    const good = goodCsrAttrs;
    const what = pick(random, ['good', 'mutated', 'libest NUL', 'garbage', '204', '404', '500', 'raw DER', 'empty 200', 'not a SEQUENCE', 'huge', 'reset']);
    count(`csrattrs ${what}`);
    switch (what) {
      case 'good':
        return base64(res, good, 'application/csrattrs');
      case 'mutated':
        return base64(res, mutate(random, good), 'application/csrattrs');
      case 'libest NUL':
        return send(res, 200, { 'Content-Type': 'application/csrattrs' }, Buffer.from(`${wrap(good)}\0`, 'latin1'));
      case 'garbage':
        return send(res, 200, {}, randomBytes(random, int(random, 500)));
      case '204':
        return send(res, 204, {}, Buffer.alloc(0));
      case '404':
        return send(res, 404, {}, Buffer.from('none'));
      case '500':
        return send(res, 500, {}, Buffer.from('down'));
      case 'raw DER':
        return send(res, 200, { 'Content-Type': 'application/csrattrs' }, good);
      case 'empty 200':
        return send(res, 200, {}, Buffer.alloc(0));
      case 'not a SEQUENCE':
        return base64(res, set(objectIdentifier('1.2.3')), 'application/csrattrs');
      case 'huge':
        return base64(res, hugeCsrAttrs, 'application/csrattrs');
      default:
        res.socket?.destroy();
        return;
    }
  };

  const cacertsAnswer = (res: ServerResponse, label: string): void => {
    if (label !== 'cacerts' || !cacertsServed) {
      cacertsServed ||= label === 'cacerts';
      return base64(res, cacerts);
    }
    const what = pick(random, ['good', 'mutated', 'garbage', '500', 'reset', 'empty', 'expired CA', 'not a CA', 'no certificates']);
    count(`cacerts ${what}`);
    switch (what) {
      case 'good':
        return base64(res, cacerts);
      case 'mutated':
        return base64(res, mutate(random, cacerts));
      case 'garbage':
        return send(res, 200, {}, randomBytes(random, 100));
      case '500':
        return send(res, 500, {}, Buffer.from('down'));
      case 'reset':
        res.socket?.destroy();
        return;
      case 'empty':
        return send(res, 200, {}, Buffer.alloc(0));
      case 'expired CA': {
        const fields = tbsFields({
          issuer: name('fz old'),
          subject: name('fz old'),
          spki: otherCa.spki,
          notBefore: new Date(0),
          notAfter: new Date(86_400_000),
          extensions: [EXTENSIONS.ca()],
        });
        return base64(res, buildCertsOnly([certificate(fields, otherCa.privateKey)]));
      }
      case 'not a CA':
        return base64(
          res,
          buildCertsOnly([
            certificate(
              tbsFields({
                issuer: name('fz upstream issuing'),
                subject: name('fz leaf'),
                spki: otherCa.spki,
                notBefore: new Date(0),
                notAfter: new Date(4e12),
                extensions: [EXTENSIONS.endEntity()],
              }),
              issuingKey.privateKey,
            ),
          ]),
        );
      default:
        return base64(res, buildCertsOnly([]));
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    const [, label = '', operation = ''] = /^\/\.well-known\/est\/([^/]+)\/([^/?]+)/.exec(req.url ?? '') ?? [];
    if (operation === 'cacerts') return cacertsAnswer(res, label);
    if (operation === 'csrattrs') return csrattrs(res);
    if (operation !== 'simpleenroll' && operation !== 'simplereenroll') return send(res, 404, {}, Buffer.from('no'));
    const csr = Buffer.from(body.toString('latin1').replace(/\s+/g, ''), 'base64');
    const tag = TAG.exec(csr.toString('latin1'));
    const answer = ANSWERS[Number(tag?.[1] ?? 0)] ?? ANSWERS[0]!;
    const id = tag?.[2] ?? '';
    if (waiting.delete(id)) {
      count('good (forwarded again)');
      return base64(res, buildCertsOnly([issue(csr)]));
    }
    if (answer.flaky || answer.name === '202 odd Retry-After') waiting.add(id);
    count(answer.name);
    enroll(res, answer, csr);
  };

  const server: Server = createServer({ cert: options.cert, key: options.key, keepAliveTimeout: 60_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      // A fault of the fuzzer itself, not of est-ra: loud, and the run fails on the unhandled count.
      console.error(`fuzz upstream: ${err instanceof Error ? err.stack : String(err)}`);
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function wrap(der: Buffer): string {
  return `${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\r\n')}\r\n`;
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: Buffer): void {
  res.writeHead(status, { ...headers, 'Content-Length': String(body.length) });
  res.end(body);
}

function base64(res: ServerResponse, der: Buffer, contentType = 'application/pkcs7-mime; smime-type=certs-only'): void {
  send(res, 200, { 'Content-Type': contentType, 'Content-Transfer-Encoding': 'base64' }, Buffer.from(wrap(der)));
}
