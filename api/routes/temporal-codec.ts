/**
 * Temporal's remote codec protocol (`POST /codec/encode`, `POST /codec/decode`, a JSON body
 * `{payloads: [{metadata: {key: base64}, data: base64}]}` answered in the same form), so the
 * Temporal UI and CLI can show operators the payloads that Temporal stores encrypted
 * (lib/payload-codec). Admins only: decoded payloads hold users' prompts. The codec is the API's
 * own Temporal client's, so the endpoint decodes exactly what this deployment encodes.
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { z } from 'zod';
import type { ApiDeps } from '../app';
import { requireAdmin } from '../auth';
import { HttpError, parse, route } from '../errors';
import { codecPayloads } from '../schemas';


const fromJson = (p: z.infer<typeof codecPayloads>['payloads'][number]): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});
const toJson = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

/**
 * CORS for the Temporal UI's origin on /codec (the UI calls the endpoint from the browser,
 * with its own `X-Namespace` header and the operator's credentials). Mounted before the API's
 * own CORS, rate limit and authentication: a preflight carries no credentials.
 */
export function codecCors(uiUrl: string) {
  const uiOrigin = new URL(uiUrl).origin;
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.get('origin');
    res.vary('Origin');
    if (origin === uiOrigin) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    if (req.method === 'OPTIONS' && origin !== undefined && req.get('access-control-request-method')) {
      if (origin === uiOrigin) {
        res.setHeader('Access-Control-Allow-Methods', 'POST');
        res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, X-Namespace');
        res.setHeader('Access-Control-Max-Age', '600');
      }
      res.status(204).end();
      return;
    }
    next();
  };
}

/** `POST /codec/encode` and `POST /codec/decode` for admins. */
export function codecRouter(deps: Pick<ApiDeps, 'temporal' | 'logger'>): Router {
  const log = deps.logger.child({ component: 'codec' });
  const codecs: PayloadCodec[] = deps.temporal.options.loadedDataConverter.payloadCodecs;
  const router = Router();
  for (const op of ['encode', 'decode'] as const) {
    router.post(
      `/codec/${op}`,
      requireAdmin,
      route(async (req, res) => {
        const { payloads } = parse(codecPayloads, req.body ?? {});
        let out = payloads.map(fromJson);
        try {
          // Encoding runs the codecs in order, decoding in reverse (as the SDK does).
          for (const c of op === 'encode' ? codecs : [...codecs].reverse()) out = await c[op](out);
        } catch (err) {
          log.warn({ op, err: (err as Error).message }, 'payloads could not be processed');
          throw new HttpError(422, 'undecodable', `payloads could not be ${op}d with this deployment's keys`);
        }
        res.json({ payloads: out.map(toJson) });
      }),
    );
  }
  return router;
}
