import { serve } from '@hono/node-server';
import { Hono } from 'hono';

// The upper bound on this machine: bare Hono on @hono/node-server, same runtime as the LMS.
const app = new Hono().get('/', (c) => c.json({ return_code: 0, content: 'hello' }));
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(
    `${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${info.port}` })}\n`,
  );
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
