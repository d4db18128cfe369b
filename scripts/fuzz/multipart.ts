/**
 * Multipart bodies with a CSR part, as some clients (web forms, scripted
 * uploads) send them: multipart/form-data and multipart/mixed (RFC 2046
 * §5.1, RFC 7578), nested, and with broken boundaries. est-ra reads a CSR
 * body as base64, PEM or DER only (RFC 7030 §4.2.1): under a multipart
 * Content-Type the answer is 415; under a CSR content type the body decoder
 * meets the multipart text and answers 400, or 200 when a PEM block inside
 * it is a good request.
 */
import { int, pick, type Random } from './random.js';

export interface MultipartCase {
  readonly contentType: string;
  readonly body: Buffer;
  /** What the case is, for a finding. */
  readonly shape: string;
  readonly allowed: readonly number[];
}

const pem = (der: Buffer): string =>
  `-----BEGIN CERTIFICATE REQUEST-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;

export function multipartCase(random: Random, csrDer: Buffer): MultipartCase {
  const boundary = pick(random, ['x', 'boundary42', '----WebKitFormBoundary7MA4YWxkTrZu0gW', '"quoted boundary"', 'b'.repeat(71), '', '=?utf-8?', 'a b', '--']);
  const bare = boundary.replace(/^"|"$/g, '');
  const eol = pick(random, ['\r\n', '\n', '\r']);
  const csrText = pick(random, [csrDer.toString('base64'), pem(csrDer), (csrDer.toString('base64').match(/.{1,64}/g) ?? []).join(eol)]);
  const partHeaders = pick(random, [
    `Content-Disposition: form-data; name="csr"; filename="device.csr"${eol}Content-Type: application/pkcs10`,
    `Content-Type: application/pkcs10${eol}Content-Transfer-Encoding: base64`,
    `Content-Disposition: form-data; name="file"`,
    '',
    `Content-Type: multipart/mixed; boundary="inner"`,
  ]);
  const part = (headers: string, content: string): string => `--${bare}${eol}${headers}${eol}${eol}${content}${eol}`;
  let shape = pick(random, [
    'one part',
    'two parts',
    'nested',
    'no closing boundary',
    'boundary missing',
    'preamble and epilogue',
    'boundary inside the CSR',
    'binary DER part',
  ]);
  let text: string;
  switch (shape) {
    case 'two parts':
      text = `${part('Content-Disposition: form-data; name="label"', 'line-1')}${part(partHeaders, csrText)}--${bare}--${eol}`;
      break;
    case 'nested':
      text = `${part('Content-Type: multipart/mixed; boundary="inner"', `--inner${eol}Content-Type: application/pkcs10${eol}${eol}${csrText}${eol}--inner--`)}--${bare}--${eol}`;
      break;
    case 'no closing boundary':
      text = part(partHeaders, csrText);
      break;
    case 'boundary missing':
      text = `${partHeaders}${eol}${eol}${csrText}`;
      break;
    case 'preamble and epilogue':
      text = `This is a preamble${eol}${part(partHeaders, csrText)}--${bare}--${eol}epilogue -----BEGIN CERTIFICATE REQUEST-----`;
      break;
    case 'boundary inside the CSR': {
      const at = int(random, csrText.length);
      text = `${part(partHeaders, `${csrText.slice(0, at)}${eol}--${bare}${eol}${csrText.slice(at)}`)}--${bare}--${eol}`;
      break;
    }
    case 'binary DER part':
      text = `${part(partHeaders, csrDer.toString('latin1'))}--${bare}--${eol}`;
      break;
    default:
      shape = 'one part';
      text = `${part(partHeaders, csrText)}--${bare}--${eol}`;
  }
  const multipartType = pick(random, ['multipart/form-data', 'multipart/mixed', 'Multipart/Form-Data', 'multipart/related']);
  const declared = random() < 0.6;
  const contentType = declared ? `${multipartType}; boundary=${boundary}` : pick(random, ['application/pkcs10', 'text/plain', 'application/octet-stream', '']);
  return {
    contentType,
    body: Buffer.from(text, 'latin1'),
    shape: `${declared ? multipartType : `multipart body as ${contentType || 'no type'}`}, ${shape}, boundary ${JSON.stringify(boundary)}`,
    // A PEM block inside the text is what the decoder reads (DigiCert's curl examples), so a good CSR there may issue.
    allowed: declared ? [415] : [200, 400],
  };
}
