/**
 * Certificates for a throwaway control plane, made with the openssl CLI (Node's crypto cannot issue X.509 certificates).
 * Everything lands in one directory that the control plane removes on stop.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertificatePaths {
  cert: string;
  key: string;
}

export interface IssueOptions {
  commonName: string;
  organizations?: string[];
  ipAddresses?: string[];
  dnsNames?: string[];
  serverAuth?: boolean;
  clientAuth?: boolean;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

export async function createCertificateAuthority(dir: string, name: string): Promise<CertificatePaths> {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key,
    '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'], dir);
  return { cert, key };
}

export async function issueCertificate(dir: string, ca: CertificatePaths, name: string, options: IssueOptions): Promise<CertificatePaths> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const extFile = path.join(dir, `${name}.ext`);
  const subject = [`/CN=${options.commonName}`, ...(options.organizations ?? []).map((o) => `/O=${o}`)].join('');
  const usages = [options.serverAuth ? 'serverAuth' : '', options.clientAuth ? 'clientAuth' : ''].filter(Boolean);
  const sans = [...(options.ipAddresses ?? []).map((ip) => `IP:${ip}`), ...(options.dnsNames ?? []).map((d) => `DNS:${d}`)];
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${usages.join(',')}`,
    ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
  ];
  await writeFile(extFile, ext.join('\n') + '\n');
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr,
    '-subj', subject], dir);
  // A random serial rather than -CAcreateserial: certificates are issued in parallel, and a shared serial file is read
  // half-written by one openssl while another writes it.
  const serial = `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}`;
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial, '-out', cert, '-days', '2',
    '-extfile', extFile], dir);
  return { cert, key };
}

/** RSA key pair for signing ServiceAccount tokens. */
export async function createSigningKey(dir: string, name: string): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = path.join(dir, `${name}.key`);
  const publicKey = path.join(dir, `${name}.pub`);
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', privateKey], dir);
  await openssl(['pkey', '-in', privateKey, '-pubout', '-out', publicKey], dir);
  return { privateKey, publicKey };
}
