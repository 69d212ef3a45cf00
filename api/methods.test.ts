import express, { Router } from 'express';
import { allowedMethods } from './methods';

describe('allowedMethods', () => {
  const app = express();
  const servers = Router();
  servers.get('/servers', (_req, res) => void res.end());
  servers.post('/servers', (_req, res) => void res.end());
  servers.patch('/servers/:id', (_req, res) => void res.end());
  servers.delete('/servers/:id', (_req, res) => void res.end());
  servers.use('/servers', (_req, _res, next) => next());
  app.use(servers);
  const nested = Router();
  nested.put('/things/:name', (_req, res) => void res.end());
  app.use('/api', nested);

  it('lists every method the routes on a path answer, HEAD with GET', () => {
    expect(allowedMethods(app.router, '/servers')).toEqual(['GET', 'HEAD', 'POST']);
    expect(allowedMethods(app.router, '/servers/abc')).toEqual(['PATCH', 'DELETE']);
  });

  it('follows routers mounted under a path', () => {
    expect(allowedMethods(app.router, '/api/things/x')).toEqual(['PUT']);
  });

  it('is empty for a path no route serves (a 404, not a 405)', () => {
    expect(allowedMethods(app.router, '/nowhere')).toEqual([]);
    expect(allowedMethods(app.router, '/servers/a/b')).toEqual([]);
  });
});
