import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from './password.ts';

describe('Django pbkdf2_sha256 passwords', () => {
  it('writes the Django format and verifies its own hashes', async () => {
    const encoded = await hashPassword('secret', 1000);
    expect(encoded).toMatch(/^pbkdf2_sha256\$1000\$[A-Za-z0-9]{22}\$[A-Za-z0-9+/]{43}=$/);
    expect(await verifyPassword('secret', encoded)).toBe(true);
    expect(await verifyPassword('Secret', encoded)).toBe(false);
  });

  it('verifies a hash computed by another implementation (Python hashlib)', async () => {
    const encoded = 'pbkdf2_sha256$1000$seasalt$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=';
    expect(await verifyPassword('lètmein', encoded)).toBe(true);
    expect(await verifyPassword('letmein', encoded)).toBe(false);
  });

  it('says no to malformed or foreign hashes instead of throwing', async () => {
    for (const encoded of [
      '',
      'md5$1000$salt$abc',
      'pbkdf2_sha256$abc$salt$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=',
      'pbkdf2_sha256$0$salt$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=',
      'pbkdf2_sha256$1000$salt$short',
      'pbkdf2_sha256$99999999999$salt$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=',
      'pbkdf2_sha256$1000$$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=',
    ]) {
      expect(await verifyPassword('lètmein', encoded)).toBe(false);
    }
  });
});
