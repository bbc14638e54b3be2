/* Certificates for the fleet's TLS tests, made with openssl (argument vectors, no shell): a CA,
 * a server certificate for 127.0.0.1 and localhost, and one client certificate per name whose
 * CN is the name (etcd's --client-cert-auth takes the CN as the etcd user). P-256 keys: quick to
 * make on a loaded machine, and both etcd (Go) and npm etcd3 (grpc-js) take them. */

import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runSync } from '../exec.js';
import { requireTools } from '../prerequisites.js';

/** A certificate and its private key, as files. */
export interface CertPair { cert: string; key: string }

/** The files makeCerts wrote. */
export interface Certs {
  /** the CA's certificate, the one file a client or server needs to trust the others */
  ca: string;
  /** the server's: subjectAltName IP:127.0.0.1 and DNS:localhost, serverAuth and clientAuth
   * (etcd 3.4's gateway dials its own gRPC port with the server certificate) */
  server: CertPair;
  /** each client's by name: CN=name, clientAuth */
  clients: Record<string, CertPair>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** days each certificate is valid: the tests' certificates outlive no test run by much */
const DAYS = '2';
const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  runSync(['openssl', ...args], { timeoutMs: 60_000, pkg: 'openssl' });
}

/** A key and a certificate signed by the CA (OpenSSL 3's `req -x509 -CA`: one command). */
function issue(dir: string, base: string, cn: string, ca: CertPair, ext: string[]): CertPair {
  const pair = { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
  openssl(['req', '-x509', ...KEY, '-keyout', pair.key, '-out', pair.cert, '-days', DAYS, '-subj', `/CN=${cn}`,
    '-CA', ca.cert, '-CAkey', ca.key, ...ext.flatMap((e) => ['-addext', e])]);
  chmodSync(pair.key, 0o600);
  return pair;
}

/** Makes a CA, a server certificate and one client certificate per name in dir (created if
 * absent); keys are mode 0600. */
export function makeCerts(dir: string, o: { clients: string[] }): Certs {
  requireTools('openssl');
  for (const c of o.clients) if (!NAME.test(c) || c === 'ca' || c === 'server') throw new Error(`makeCerts: a client name is letters, digits, . _ - (not ca or server), not "${c}"`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  openssl(['req', '-x509', ...KEY, '-keyout', ca.key, '-out', ca.cert, '-days', DAYS, '-subj', '/CN=qosd test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  chmodSync(ca.key, 0o600);
  const leaf = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature'];
  const server = issue(dir, 'server', 'localhost', ca, [...leaf, 'subjectAltName=IP:127.0.0.1,DNS:localhost', 'extendedKeyUsage=serverAuth,clientAuth']);
  const clients: Record<string, CertPair> = {};
  for (const c of o.clients) clients[c] = issue(dir, `client-${c}`, c, ca, [...leaf, 'extendedKeyUsage=clientAuth']);
  return { ca: ca.cert, server, clients };
}
