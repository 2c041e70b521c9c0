/**
 * A small certificate authority with Node's crypto only (no dependency, no openssl binary in the images): an ECDSA
 * P-256 CA and serving certificates it signs, DER-encoded by hand (RFC 5280) and returned as PEM. Enough for the
 * controller to issue the agents' serving certificate and the CNPG-I plugin's pair; not a general X.509 library.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

// DER (X.690) encoding of the few types a certificate needs.
function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), length(body.length), body]);
const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, body: Buffer): Buffer => tlv(0xa0 + n, body);
const octets = (body: Buffer): Buffer => tlv(0x04, body);
const bits = (body: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), body]));
const utf8 = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'));
const boolean = (value: boolean): Buffer => tlv(0x01, Buffer.from([value ? 0xff : 0]));

function integer(bytes: Buffer): Buffer {
  let body = bytes;
  while (body.length > 1 && body[0] === 0 && ((body[1] ?? 0) & 0x80) === 0) body = body.subarray(1);
  if (((body[0] ?? 0) & 0x80) !== 0) body = Buffer.concat([Buffer.from([0]), body]);
  return tlv(0x02, body);
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** UTCTime until 2049, GeneralizedTime after, as RFC 5280 requires. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

const ecdsaWithSha256 = sequence(oid('1.2.840.10045.4.3.2'));
const name = (commonName: string): Buffer => sequence(set(sequence(oid('2.5.4.3'), utf8(commonName))));
const extension = (id: string, critical: boolean, value: Buffer): Buffer => sequence(oid(id), ...(critical ? [boolean(true)] : []), octets(value));

/** The key identifier RFC 5280 4.2.1.2 method 1 describes: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(spki: Buffer): Buffer {
  // SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING }; for P-256 the bit string is the last 65 bytes.
  return createHash('sha1').update(spki.subarray(spki.length - 65)).digest();
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

export interface CertificateOptions {
  commonName: string;
  /** DNS names the certificate is valid for (subjectAltName); none for a CA. */
  dnsNames?: readonly string[];
  notBefore: Date;
  notAfter: Date;
  /** The signing CA; absent for a self-signed CA. */
  issuer?: IssuedCertificate & { commonName: string };
  /** What a certificate signed by `issuer` is for (extendedKeyUsage): TLS server (default) or TLS client. */
  usage?: 'server' | 'client';
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function extensionsFor(options: CertificateOptions, spki: Buffer, issuerSpki: Buffer): Buffer {
  const ca = options.issuer === undefined;
  // keyUsage, a named bit list (DER drops trailing zero bits): keyCertSign (5) and cRLSign (6) for a CA, one unused bit;
  // digitalSignature (0) for a server, seven unused bits.
  const keyUsage = ca ? Buffer.from([0x03, 0x02, 0x01, 0x06]) : Buffer.from([0x03, 0x02, 0x07, 0x80]);
  const list = [
    extension('2.5.29.19', true, ca ? sequence(boolean(true)) : sequence()),
    extension('2.5.29.15', true, keyUsage),
    extension('2.5.29.14', false, octets(keyIdentifier(spki))),
    extension('2.5.29.35', false, sequence(tlv(0x80, keyIdentifier(issuerSpki)))),
  ];
  if (!ca) {
    list.push(extension('2.5.29.37', false, sequence(oid(options.usage === 'client' ? '1.3.6.1.5.5.7.3.2' : '1.3.6.1.5.5.7.3.1'))));
    const dnsNames = options.dnsNames ?? [];
    if (dnsNames.length > 0) list.push(extension('2.5.29.17', false, sequence(...dnsNames.map((dns) => tlv(0x82, Buffer.from(dns, 'ascii'))))));
  }
  return explicit(3, sequence(...list));
}

/** A certificate (a self-signed CA without `issuer`, else a serving certificate signed by it) and its new key. */
export function issueCertificate(options: CertificateOptions): IssuedCertificate {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const signer: KeyObject | string = options.issuer?.keyPem ?? privateKey;
  const issuerSpki = options.issuer ? createPublicKey(options.issuer.keyPem).export({ type: 'spki', format: 'der' }) : spki;
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ecdsaWithSha256,
    name(options.issuer?.commonName ?? options.commonName),
    sequence(time(options.notBefore), time(options.notAfter)),
    name(options.commonName),
    spki,
    extensionsFor(options, spki, issuerSpki),
  );
  const signature = sign('sha256', tbs, signer);
  const der = sequence(tbs, ecdsaWithSha256, bits(signature));
  return { certPem: toPem('CERTIFICATE', der), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
