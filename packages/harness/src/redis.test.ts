import { createConnection } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startRedis } from './redis.ts';

function send(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('error', reject);
    socket.once('connect', () => socket.write(command));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString());
    });
  });
}

describe('startRedis', () => {
  it('starts a private server that answers and is gone after stop', async () => {
    const redis = await startRedis();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(await send(redis.port, 'PING\r\n')).toBe('+PONG\r\n');
    await redis.stop();
    await expect(send(redis.port, 'PING\r\n')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('names the missing binary', async () => {
    await expect(startRedis({ binary: 'no-such-redis-server' })).rejects.toThrow(/not found/);
  });
});
