/**
 * A stand-in for a watcher replica, for the supervisor's tests: it speaks the watcher's stdout
 * contract (the "metrics listening" line, `event` lines, `replica-exit` before it stops itself)
 * and dies when told to, which the real watcher does only under a storm.
 *
 * - `GET /metrics`: `stand_in_up{replica,pid} 1`.
 * - `POST /die`: answers, prints one `login-timeout`, one `connection-died` and `replica-exit`,
 *   and exits 3, as a watcher whose connection died on a login timeout.
 * - `STAND_IN_DIE_AT_START=true`: the same death before it listens.
 * - SIGTERM: exits 0.
 */
import { createServer } from 'node:http';

const replica = process.env.WATCHER_REPLICA_ID ?? 'stand-in';
const EXIT_CODE = 3;

function print(entry: Record<string, unknown>, then?: () => void) {
  process.stdout.write(`${JSON.stringify({ level: 50, replica, ...entry })}\n`, then);
}

function die() {
  print({ event: 'login-timeout', queue: 'q', connection: 0, msg: 'login timed out' });
  print({ event: 'connection-died', queue: 'q', connection: 0, reason: 'login-timeout' });
  print({ event: 'replica-exit', code: EXIT_CODE, msg: 'replica exits' }, () =>
    process.exit(EXIT_CODE),
  );
}

if (process.env.STAND_IN_DIE_AT_START === 'true') {
  die();
} else {
  const server = createServer((request, response) => {
    if (request.method === 'POST' && request.url === '/die') {
      response.end('dying\n', die);
      return;
    }
    response.setHeader('content-type', 'text/plain');
    response.end(`stand_in_up{replica="${replica}",pid="${process.pid}"} 1\n`);
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    print({ level: 30, msg: 'metrics listening', url: `http://127.0.0.1:${port}/metrics` });
  });
  process.once('SIGTERM', () => process.exit(0));
}
