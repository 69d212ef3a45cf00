import fs from 'node:fs';
import { Client, Connection, type ClientInterceptors, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from '../domain/config';

type TemporalSettings = Pick<
  Config,
  | 'TEMPORAL_ADDRESS'
  | 'TEMPORAL_NAMESPACE'
  | 'TEMPORAL_TLS_CERT_FILE'
  | 'TEMPORAL_TLS_KEY_FILE'
  | 'TEMPORAL_TLS_CA_FILE'
  | 'TEMPORAL_TLS_SERVER_NAME'
  | 'TEMPORAL_API_KEY'
>;

/** Connection options for the dev server (plain) or a production cluster (mTLS and/or API key). */
export function temporalConnectionOptions(c: TemporalSettings): ConnectionOptions & NativeConnectionOptions {
  const mtls = c.TEMPORAL_TLS_CERT_FILE && c.TEMPORAL_TLS_KEY_FILE;
  const tls =
    mtls || c.TEMPORAL_API_KEY || c.TEMPORAL_TLS_CA_FILE
      ? {
          serverNameOverride: c.TEMPORAL_TLS_SERVER_NAME,
          serverRootCACertificate: c.TEMPORAL_TLS_CA_FILE ? fs.readFileSync(c.TEMPORAL_TLS_CA_FILE) : undefined,
          clientCertPair: mtls
            ? { crt: fs.readFileSync(c.TEMPORAL_TLS_CERT_FILE!), key: fs.readFileSync(c.TEMPORAL_TLS_KEY_FILE!) }
            : undefined,
        }
      : undefined;
  return { address: c.TEMPORAL_ADDRESS, tls, apiKey: c.TEMPORAL_API_KEY };
}

/** The one long-lived Temporal client of a process. */
export async function createTemporalClient(c: TemporalSettings, interceptors?: ClientInterceptors): Promise<Client> {
  const connection = await Connection.connect(temporalConnectionOptions(c));
  return new Client({ connection, namespace: c.TEMPORAL_NAMESPACE, interceptors });
}

/** The worker's native connection. */
export function createNativeConnection(c: TemporalSettings): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(c));
}
