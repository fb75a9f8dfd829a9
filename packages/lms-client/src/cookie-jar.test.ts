import { describe, expect, it } from 'vitest';
import { CookieJar } from './cookie-jar.ts';

describe('CookieJar', () => {
  it('sends back what the server set, without attributes', () => {
    const jar = new CookieJar(() => 0);
    jar.store(['csrftoken=abc; Path=/; SameSite=Lax', 'sessionid=s1; HttpOnly; Path=/']);
    expect(jar.get('csrftoken')).toBe('abc');
    expect(jar.header()).toBe('csrftoken=abc; sessionid=s1');
  });

  it('replaces a cookie of the same name and deletes on Max-Age=0', () => {
    const jar = new CookieJar(() => 0);
    jar.store(['sessionid=old', 'csrftoken=t']);
    jar.store(['sessionid=new']);
    expect(jar.get('sessionid')).toBe('new');
    jar.store(['sessionid=""; Max-Age=0; Path=/']);
    expect(jar.header()).toBe('csrftoken=t');
  });

  it('forgets a cookie once its Max-Age has passed, preferring Max-Age over Expires', () => {
    let nowMs = Date.parse('2030-01-01T00:00:00Z');
    const jar = new CookieJar(() => nowMs);
    jar.store(['sessionid=s; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT']);
    expect(jar.get('sessionid')).toBe('s');
    nowMs += 61_000;
    expect(jar.get('sessionid')).toBeUndefined();
    expect(jar.header()).toBe('');
  });

  it('starts empty after clear, as upstream clears cookies before each login', () => {
    const jar = new CookieJar(() => 0);
    jar.store(['a=1']);
    jar.clear();
    expect(jar.header()).toBe('');
  });
});
