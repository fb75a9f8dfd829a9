import { setTimeout as sleep } from 'node:timers/promises';
import { type Verdict, verdictOf } from '../figures.ts';
import { type Counters, readConnectionsAlive, readCounters, since } from '../sampler.ts';
import { type CommandOptions, must, run } from './command.ts';
import { CheckError, type Say } from './engine.ts';

/** The label docker-compose puts on each container: which service it belongs to. */
const SERVICE_LABEL = 'com.docker.compose.service';

/** The label of the Dockerfiles' build stage (`LABEL dev.storm-lab.stage=build`). */
const BUILD_LABEL = 'dev.storm-lab.stage=build';

export interface StackOptions {
  /** docker-compose.yml of the repository. */
  file: string;
  /** The compose project name: every container, network, volume and image carries it. */
  project: string;
  /** Host port (on 127.0.0.1) the LMS is published on. */
  lmsPort: number;
  /** The service account the watchers log in as (docker-compose.yml's XQUEUE_USERNAME). */
  serviceUsername: string;
  /** The LMS's METRICS_TOKEN (also in `env`): sent with every read of its /metrics. */
  metricsToken: string;
  /** Variables for docker-compose on top of the process's own. */
  env: Record<string, string>;
  log: string;
  say: Say;
  /** Whether the output is a terminal (a live line) or a pipe (a line every few seconds). */
  tty: boolean;
}

/** One container of the project as `docker inspect` sees it. */
interface ContainerState {
  id: string;
  service: string;
  status: string;
  /** 'healthy', 'starting', 'unhealthy', or '' for a container without a healthcheck. */
  health: string;
  restarts: number;
  address: string;
}

/** What one measured window showed, from the LMS's /metrics and the replicas'. */
export interface WindowFigures {
  label: string;
  replicas: number;
  /** replicas x queues x connections per queue. */
  connections: number;
  seconds: number;
  /** The LMS's counters from its start to the window's: the start-up, first logins included. */
  before: Counters;
  counters: Counters;
  /** Watcher connections whose loop ran at the end of the window. */
  alive: number;
  /** Container restarts of the watchers during the window (replicas that exited). */
  restarts: number;
  verdict: Verdict;
}

/**
 * One progress line: rewritten in place on a terminal, otherwise printed as a plain line at
 * most every `plainEveryMs`.
 */
class LiveLine {
  private shown = 0;

  constructor(
    private readonly tty: boolean,
    private readonly say: Say,
    private readonly plainEveryMs: number,
  ) {}

  show(line: string): void {
    if (this.tty) process.stdout.write(`\r\x1b[2K${line}`);
    else if (Date.now() - this.shown >= this.plainEveryMs) {
      this.shown = Date.now();
      this.say(line);
    }
  }

  /** Clears the terminal line, so the next output starts on an empty one. */
  done(): void {
    if (this.tty) process.stdout.write('\r\x1b[2K');
  }
}

const secondsSince = (started: number) => Math.round((Date.now() - started) / 1000);

/**
 * The stack of docker-compose.yml as one compose project: built, started, scaled, measured and
 * taken down by the compose check.
 */
export class ComposeStack {
  constructor(private readonly options: StackOptions) {}

  /** docker-compose's arguments for this project. */
  private args(args: readonly string[]): string[] {
    return ['-f', this.options.file, '-p', this.options.project, ...args];
  }

  /** The process's variables, the check's on top, then `extra`. */
  private env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return { ...process.env, ...this.options.env, ...extra };
  }

  /** Runs docker-compose for this project and resolves with its output, whatever its exit. */
  query(args: readonly string[]) {
    return run('docker-compose', this.args(args), { env: this.env(), timeoutMs: 60_000 });
  }

  /** Runs docker-compose for this project, its output to the log; fails on a non-zero exit. */
  private compose(
    args: readonly string[],
    extra: Record<string, string> = {},
    more: CommandOptions = {},
  ) {
    return must('docker-compose', this.args(args), {
      env: this.env(extra),
      logFile: this.options.log,
      timeoutMs: 600_000,
      ...more,
    });
  }

  /** Builds both images, with a line that shows the build step it is at. */
  async build(): Promise<void> {
    const started = Date.now();
    const line = new LiveLine(this.options.tty, this.options.say, 15_000);
    let step = 'starting';
    let service = '';
    const timer = setInterval(
      () =>
        line.show(
          `  building ${service || 'images'} ${secondsSince(started)}s  ${step}`.slice(0, 110),
        ),
      1000,
    );
    try {
      await this.compose(
        ['build'],
        {},
        {
          timeoutMs: 1_800_000,
          onOutput: (text) => {
            service = /^Building (\w+)$/m.exec(text)?.[1] ?? service;
            step = [...text.matchAll(/Step \d+\/\d+ : [^\n]*/g)].at(-1)?.[0] ?? step;
          },
        },
      );
    } finally {
      clearInterval(timer);
      line.done();
    }
    this.options.say(`Images built in ${secondsSince(started)} s.`);
  }

  /** `up -d` with `replicas` watchers and the given LMS settings; waits until all are healthy. */
  async up(replicas: number, settings: Record<string, string>): Promise<void> {
    await this.compose(['up', '-d', '--no-build', '--scale', `watcher=${replicas}`], settings);
    await this.waitHealthy(replicas, 240_000);
  }

  /**
   * Stops and removes the project's containers, network and volumes and, with `images`, the
   * images it built (the project's and the build stage's, by their label).
   */
  async down(images: boolean): Promise<void> {
    const rmi = images ? ['--rmi', 'local'] : [];
    await this.compose(['down', '-v', ...rmi, '--remove-orphans', '-t', '10']);
    if (images) await run('docker', ['image', 'prune', '-f', '--filter', `label=${BUILD_LABEL}`]);
  }

  private async containers(): Promise<ContainerState[]> {
    const ids = await run('docker', [
      'ps',
      '-aq',
      '--filter',
      `label=com.docker.compose.project=${this.options.project}`,
    ]);
    const list = ids.stdout.split('\n').filter(Boolean);
    if (list.length === 0) return [];
    const format = `{{.Id}}|{{index .Config.Labels "${SERVICE_LABEL}"}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.RestartCount}}|{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}`;
    const inspected = await run('docker', ['inspect', '--format', format, ...list]);
    return inspected.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [id = '', service = '', status = '', health = '', restarts = '0', address = ''] =
          line.split('|');
        return { id, service, status, health, restarts: Number(restarts), address };
      });
  }

  private async waitHealthy(replicas: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const states = await this.containers();
      const healthy = (service: string) =>
        states.filter(
          (c) => c.service === service && c.status === 'running' && c.health === 'healthy',
        ).length;
      const watchers = healthy('watcher');
      const redis = healthy('redis');
      const sessions = healthy('session-redis');
      last = `redis ${redis}/1, session-redis ${sessions}/1, lms ${healthy('lms')}/1, watchers ${watchers}/${replicas} healthy`;
      if (redis === 1 && sessions === 1 && healthy('lms') === 1 && watchers === replicas) return;
      if (Date.now() > deadline) {
        const logs = await run(
          'docker-compose',
          this.args(['logs', '--tail', '15', '--no-color']),
          {
            env: this.env(),
          },
        );
        throw new CheckError(
          `The stack was not healthy within ${timeoutMs / 1000} s (${last}). Last log lines:\n${logs.stdout.trim()}`,
        );
      }
      await sleep(1000);
    }
  }

  /** The replicas' metrics addresses on the compose network, with their restart counts. */
  private async watchers() {
    const states = (await this.containers()).filter((c) => c.service === 'watcher');
    return {
      urls: states.map((c) => (c.address ? `http://${c.address}:9100/metrics` : '')),
      restarts: states.reduce((total, c) => total + c.restarts, 0),
    };
  }

  /**
   * Measures `seconds` of the running stack: the LMS's counters for the service account (logins
   * over xqueue, 403s on get_submission/put_result, evictions) from its published /metrics, and
   * connections alive from each replica's /metrics over the compose network. The verdict is the
   * storm runner's rule, with no student load (nothing submitted).
   */
  async measure(
    label: string,
    replicas: number,
    connections: number,
    seconds: number,
  ): Promise<WindowFigures> {
    const lmsUrl = `http://127.0.0.1:${this.options.lmsPort}`;
    const user = this.options.serviceUsername;
    const token = this.options.metricsToken;
    const base = await readCounters(lmsUrl, user, token);
    const before = await this.watchers();
    const started = Date.now();
    const line = new LiveLine(this.options.tty, this.options.say, 5000);
    let figures: WindowFigures | null = null;
    for (;;) {
      const elapsed = (Date.now() - started) / 1000;
      const counters = since(await readCounters(lmsUrl, user, token), base);
      const now = await this.watchers();
      const alive = await readConnectionsAlive(now.urls);
      figures = {
        label,
        replicas,
        connections,
        seconds: Math.round(elapsed),
        before: base,
        counters,
        alive,
        restarts: now.restarts - before.restarts,
        verdict: verdictOf({ ...counters, totalConnections: connections, graded: 0, submitted: 0 }),
      };
      line.show(
        `  ${label} ${String(Math.round(elapsed)).padStart(3)}s/${seconds}s  logins ${counters.logins}` +
          `  403s ${counters.forbidden}  evictions ${counters.evictions}  alive ${alive}/${connections}` +
          `  replica restarts ${figures.restarts}`,
      );
      if (elapsed >= seconds) break;
      await sleep(1000);
    }
    line.done();
    return figures;
  }
}
