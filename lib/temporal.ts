import fs from 'node:fs';
import { Client, Connection, type ClientInterceptors, type ConnectionOptions } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from '../domain/config';
import { payloadDataConverter } from './payload-codec';

type TemporalSettings = Pick<
  Config,
  | 'TEMPORAL_ADDRESS'
  | 'TEMPORAL_NAMESPACE'
  | 'TEMPORAL_TLS_CERT_FILE'
  | 'TEMPORAL_TLS_KEY_FILE'
  | 'TEMPORAL_TLS_CA_FILE'
  | 'TEMPORAL_TLS_SERVER_NAME'
  | 'TEMPORAL_API_KEY'
  | 'TEMPORAL_PAYLOAD_KEYS'
>;

const converters = new Map<string, DataConverter | undefined>();
/**
 * The data converter every client and worker of the process uses (lib/payload-codec): one per
 * key setting, so a client and a worker of the same process always agree. Undefined without keys.
 */
export function temporalDataConverter(c: Pick<Config, 'TEMPORAL_PAYLOAD_KEYS'>): DataConverter | undefined {
  const k = c.TEMPORAL_PAYLOAD_KEYS ?? '';
  if (!converters.has(k)) converters.set(k, payloadDataConverter(c.TEMPORAL_PAYLOAD_KEYS));
  return converters.get(k);
}

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
  return new Client({ connection, namespace: c.TEMPORAL_NAMESPACE, interceptors, dataConverter: temporalDataConverter(c) });
}

/** The worker's native connection. */
export function createNativeConnection(c: TemporalSettings): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(c));
}
