import { webcrypto, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
// @peculiar/x509 resolves its ASN.1 types through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { pathExists } from '@cvc/core';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 3600 * 1000;

/** PEM files of a certificate authority and a server certificate it signed. */
export interface LocalPki {
  /** The CA certificate clients trust. */
  readonly caFile: string;
  readonly certFile: string;
  /** The server's private key (mode 0600). */
  readonly keyFile: string;
  /** A client certificate and key signed by the same CA (mutual TLS). */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

const serial = (): string =>
  Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');

async function leaf(
  ca: { cert: x509.X509Certificate; keys: CryptoKeyPair },
  cn: string,
  names: readonly string[],
  usage: 'server' | 'client',
  days: number,
): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${cn}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      ...(names.length > 0
        ? [new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })))]
        : []),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await keyPem(keys.privateKey) };
}

/** A certificate is renewed this long before it expires, so a cluster started now does not fail its TLS handshakes tomorrow. */
const RENEW_BEFORE_MS = DAY;

/**
 * Whether every certificate file parses and stays valid for at least
 * RENEW_BEFORE_MS more, and the server certificate (`files[server]`) covers
 * every one of `names`.
 */
async function stillValid(files: readonly string[], server: number, names: readonly string[]): Promise<boolean> {
  for (const [i, f] of files.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(await readFile(f));
    } catch {
      // Unreadable or not a certificate: the set is made again, as for a missing file.
      return false;
    }
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return false;
    if (i === server && !names.every((n) => (isIP(n) ? cert.checkIP(n) : cert.checkHost(n)) !== undefined)) return false;
  }
  return true;
}

/**
 * Creates a private CA (ECDSA P-256), a server certificate for `names` (DNS
 * names or IP addresses) and a client certificate, as PEM files in `dir`.
 * Private keys are written with mode 0600. Existing files are kept, so a
 * restarted local cluster keeps the certificate its clients trust, unless a
 * certificate has expired, expires within a day or cannot be read, or the
 * server certificate does not cover every one of `names`: then all of them
 * are made again (an expired certificate fails every TLS handshake).
 */
export async function ensureLocalPki(dir: string, names: readonly string[] = ['localhost', '127.0.0.1'], days = 365): Promise<LocalPki> {
  const pki: LocalPki = {
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'server.pem'),
    keyFile: join(dir, 'server-key.pem'),
    clientCertFile: join(dir, 'client.pem'),
    clientKeyFile: join(dir, 'client-key.pem'),
  };
  const all = Object.values(pki) as string[];
  if ((await Promise.all(all.map(pathExists))).every(Boolean) && (await stillValid([pki.caFile, pki.certFile, pki.clientCertFile], 1, names))) return pki;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = await generateKeys();
  const now = Date.now();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=cvc local CA',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const ca = { cert: caCert, keys };
  const server = await leaf(ca, names[0] ?? 'localhost', names, 'server', days);
  const client = await leaf(ca, 'cvc-client', [], 'client', days);
  const secret = async (file: string, text: string): Promise<void> => {
    await writeFile(file, text, { mode: 0o600 });
    await chmod(file, 0o600);
  };
  await writeFile(pki.caFile, caCert.toString('pem') + '\n');
  await writeFile(pki.certFile, server.certPem);
  await secret(pki.keyFile, server.keyPem);
  await writeFile(pki.clientCertFile, client.certPem);
  await secret(pki.clientKeyFile, client.keyPem);
  return pki;
}
