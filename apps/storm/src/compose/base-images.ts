import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { must, run } from './command.ts';
import { CheckError, type Say } from './engine.ts';

/** The images docker-compose.yml and the Dockerfiles start FROM. */
export const BASE_IMAGES = { node: 'node:20-bookworm-slim', redis: 'redis:7-bookworm' } as const;

/** The Debian root file system the stand-ins are built on. */
const BOOKWORM = 'storm-lab/bookworm-local:latest';

const exists = async (image: string) =>
  (await run('docker', ['image', 'inspect', image], { timeoutMs: 15_000 })).code === 0;

/**
 * The Debian mirror named in an apt sources file (deb822 `URIs:` or a one-line `deb` entry for
 * bookworm), or null.
 *
 * @example
 * mirrorIn('Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm'); // 'http://deb.debian.org/debian'
 */
export function mirrorIn(sources: string): string | null {
  return (
    /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(sources)?.[1] ??
    /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+bookworm\s/m.exec(sources)?.[1] ??
    null
  );
}

/** The first Debian mirror apt uses here, else deb.debian.org. */
async function debianMirror(): Promise<string> {
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    const mirror = existsSync(file) ? mirrorIn(await readFile(file, 'utf8')) : null;
    if (mirror) return mirror;
  }
  return 'http://deb.debian.org/debian';
}

/** A Dockerfile's first lines: the bookworm image with Debian's `packages` installed. */
const fromBookwormWith = (packages: string) => `FROM ${BOOKWORM}
RUN apt-get update && apt-get install -y --no-install-recommends ${packages} \\
 && rm -rf /var/lib/apt/lists/*`;

/** Builds `tag` from a Dockerfile text and the files beside it in `context`. */
async function buildImage(context: string, tag: string, dockerfile: string, log: string) {
  await writeFile(join(context, 'Dockerfile'), dockerfile);
  await must('docker', ['build', '--quiet', '-t', tag, context], {
    logFile: log,
    timeoutMs: 900_000,
  });
}

/**
 * A Debian bookworm root file system (debootstrap's minbase from the host's mirror), imported as
 * an image: what the stand-ins start FROM, since the official images cannot be pulled.
 */
async function bookwormImage(work: string, say: Say, log: string): Promise<void> {
  const root = join(work, 'bookworm-root');
  const mirror = await debianMirror();
  say(`  debootstrap --variant=minbase bookworm from ${mirror} (about 1 min)...`);
  await must('debootstrap', ['--variant=minbase', 'bookworm', root, mirror], {
    logFile: log,
    timeoutMs: 900_000,
  });
  await rm(join(root, 'var/cache/apt/archives'), { recursive: true, force: true });
  await rm(join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
  await mkdir(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
  await mkdir(join(root, 'var/cache/apt/archives/partial'), { recursive: true });
  await must('sh', ['-c', `tar -C "$0" -c . | docker import - "$1"`, root, BOOKWORM], {
    logFile: log,
    timeoutMs: 300_000,
  });
  await rm(root, { recursive: true, force: true });
}

/**
 * The node stand-in: this host's Node.js (the binary, npm, corepack and Node's headers, which
 * node-gyp needs to compile better-sqlite3 offline), the host's extra CA certificates (HTTPS
 * from a container goes through the same proxy as the host's), and a `node` user (uid 1000), as
 * the official image has.
 */
async function nodeImage(work: string, log: string): Promise<void> {
  const context = join(work, 'node-image');
  await mkdir(join(context, 'ca'), { recursive: true });
  const prefix = dirname(dirname(process.execPath));
  const parts = [
    'bin/node',
    'bin/npm',
    'bin/npx',
    'bin/corepack',
    'lib/node_modules/npm',
    'lib/node_modules/corepack',
    'include/node',
  ].filter((part) => existsSync(join(prefix, part)));
  await must('tar', ['-C', prefix, '-cf', join(context, 'node.tar'), ...parts]);
  const caDir = '/usr/local/share/ca-certificates';
  if (existsSync(caDir))
    for (const name of readdirSync(caDir).filter((file) => file.endsWith('.crt')))
      await copyFile(join(caDir, name), join(context, 'ca', name));
  await buildImage(
    context,
    BASE_IMAGES.node,
    `${fromBookwormWith('ca-certificates')}
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates && groupadd -g 1000 node && useradd -u 1000 -g node -m node
ADD node.tar ${prefix}/
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
`,
    log,
  );
}

/**
 * The redis stand-in: Debian's redis-server (7.0). Like the official image's entrypoint, it
 * turns protected mode off when started as `redis-server ...`, so other containers may connect;
 * like the official image, it has a /data owned by `redis` as its working directory (the
 * session Redis keeps its password there).
 */
async function redisImage(work: string, log: string): Promise<void> {
  const context = join(work, 'redis-image');
  await mkdir(context, { recursive: true });
  await writeFile(
    join(context, 'entrypoint.sh'),
    '#!/bin/sh\nif [ "$1" = redis-server ]; then shift; exec redis-server "$@" --protected-mode no; fi\nexec "$@"\n',
    { mode: 0o755 },
  );
  await buildImage(
    context,
    BASE_IMAGES.redis,
    `${fromBookwormWith('redis-server')}
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir /data && chown redis:redis /data
USER redis
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
`,
    log,
  );
}

export interface BaseImageOptions {
  localBaseImages: boolean;
  /** A folder for the root file system and build contexts; removed by the caller. */
  work: string;
  log: string;
  say: Say;
  /** Filled with the stand-ins as they are made: the clean-up's list to remove. */
  created: string[];
}

/**
 * Makes the base images available: present ones are used, missing ones are pulled, and where
 * a pull fails (no registry access), `localBaseImages` builds stand-ins from Debian's packages.
 * Adds each image to `created` before it builds it, so a clean-up (Ctrl-C included) removes
 * even a half-made one.
 */
export async function ensureBaseImages(options: BaseImageOptions): Promise<void> {
  const { say } = options;
  const missing: string[] = [];
  for (const image of Object.values(BASE_IMAGES)) {
    if (await exists(image)) continue;
    say(`Pulling ${image}...`);
    const pulled = await run('docker', ['pull', image], { timeoutMs: 120_000 });
    if (pulled.code === 0) continue;
    const why = `${pulled.stderr}${pulled.stdout}`.trim().split('\n').at(-1) ?? '';
    say(`  cannot pull ${image}: ${why}`);
    missing.push(image);
  }
  if (missing.length === 0) return;
  if (!options.localBaseImages)
    throw new CheckError(
      `Cannot pull ${missing.join(' or ')}: no image registry answers from here. ` +
        "Re-run with --local-base-images to build stand-ins from Debian's packages " +
        '(debootstrap and the host\'s Node.js; about 2 min; see "Compose" in the README).',
    );
  say(`No registry: building stand-ins for ${missing.join(', ')} (--local-base-images)...`);
  const { created } = options;
  created.push(BOOKWORM);
  await bookwormImage(options.work, say, options.log);
  if (missing.includes(BASE_IMAGES.node)) {
    say(`  ${BASE_IMAGES.node}: bookworm + this host's Node.js ${process.version}...`);
    created.push(BASE_IMAGES.node);
    await nodeImage(options.work, options.log);
  }
  if (missing.includes(BASE_IMAGES.redis)) {
    say(`  ${BASE_IMAGES.redis}: bookworm + Debian's redis-server...`);
    created.push(BASE_IMAGES.redis);
    await redisImage(options.work, options.log);
  }
}
