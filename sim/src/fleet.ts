import { setMaxListeners } from 'node:events';
import { CrashLoopBackoff, type SuperviseOptions } from '@storm-lab/harness';
import type { XQueueClient } from '@storm-lab/lms-client';
import {
  type ConnectionEnd,
  chainGraders,
  createGradeProcessor,
  createGrader,
  createMetrics,
  createWatcherClient,
  GRADE_JOB_OPTIONS,
  type GradeJobData,
  type Grader,
  type HandlerSpec,
  managerWait,
  runConnection,
  runHardenedPuller,
  type WatcherConfig,
  type WatcherMetrics,
  type WatcherMode,
} from '@storm-lab/watcher';
import { type Logger, pino } from 'pino';
import type { SimLms } from './lms-host.ts';
import type { Random } from './random.ts';
import { sleep } from './virtual-clock.ts';

export interface FleetOptions {
  lms: SimLms;
  config: WatcherConfig;
  mode: WatcherMode;
  replicas: number;
  /** How a replica that exited is restarted (Kubernetes' CrashLoopBackOff). */
  supervise: Omit<SuperviseOptions, 'timers'>;
  /** From a replica's (re)start until its connections begin: the process's start-up. */
  startupMs: number;
  /** BullMQ's job lock (hardened mode): how long a dead replica's job waits to move on. */
  jobLockMs: number;
  /** BullMQ worker concurrency per queue and replica (hardened mode). */
  concurrency: number;
  /**
   * Replicas start one after another, each once the previous one's connections ended their
   * first login (as `pnpm storm` starts them, and as a rolling deployment does); otherwise all
   * at once.
   */
  oneByOne: boolean;
  random: Random;
  /** Every log line of every replica (the watcher's event lines among them). */
  onLine(line: string): void;
}

/** What the whole fleet did, summed over replicas and incarnations. */
export interface FleetCounts {
  logins: number;
  loginTimeouts: number;
  authFailures: number;
  connectionDeaths: number;
  deathReasons: string[];
  restarts: number;
  /** Connections whose loop runs now. */
  alive: number;
  /** Gradings that ran to the end, by submission id (a repeat is a second grading). */
  gradings: Map<number, number>;
}

/** A BullMQ job as the processor reads it: its id, data and attempts so far. */
const FIRST_LOGINS_WAIT_MS = 10_000;

type SimJob = Parameters<ReturnType<typeof createGradeProcessor>>[0];

async function counted(counter: { get(): Promise<{ values: { value: number }[] }> }) {
  return (await counter.get()).values.reduce((total, sample) => total + sample.value, 0);
}

/**
 * The grader fleet as production runs it: `replicas` watcher processes, each with CONNECTIONS
 * clients per queue logging in as the one service account, each connection running the
 * watcher's own loop (upstream's serial loop, or the hardened puller), upstream's Manager exit on
 * a dead connection, and a supervisor restarting exited replicas with CrashLoopBackOff.
 * Grading is the watcher's own grader and processor on a virtual delay.
 */
export class SimFleet {
  private readonly incarnations: Replica[] = [];
  private readonly backoffs: CrashLoopBackoff[] = [];
  private stopped = false;
  restarts = 0;
  readonly deathReasons: string[] = [];
  readonly gradings = new Map<number, number>();
  readonly jobs: SimJobs;
  private readonly startedAt = Date.now();

  constructor(private readonly options: FleetOptions) {
    this.jobs = new SimJobs(this, options);
    for (let index = 0; index < options.replicas; index++) {
      this.backoffs.push(new CrashLoopBackoff(options.supervise));
    }
    this.ready = options.oneByOne ? this.launchInTurn() : this.launchAll();
  }

  /**
   * Resolves once every replica started and its connections ended their first login (at most
   * 10 s each), as the storm runner's `startWatchers` returns: the load starts then.
   */
  readonly ready: Promise<void>;

  private async launchAll() {
    const replicas = Array.from({ length: this.options.replicas }, (_, index) =>
      this.launch(index, 0),
    );
    await Promise.all(replicas.map((replica) => this.firstLogins(replica)));
  }

  // As the storm runner's oneByOne: the next replica once this one logged in.
  private async launchInTurn() {
    for (let index = 0; index < this.options.replicas && !this.stopped; index++) {
      await this.firstLogins(this.launch(index, 0));
    }
  }

  private async firstLogins(replica: Replica) {
    const deadline = Date.now() + FIRST_LOGINS_WAIT_MS;
    while (replica.firstLoginsEnded < replica.connections && Date.now() < deadline) {
      await sleep(20);
    }
  }

  /** Live replicas (the hardened job queue's workers). */
  get live(): readonly Replica[] {
    return this.incarnations.filter((replica) => replica.alive);
  }

  private launch(index: number, incarnation: number): Replica {
    const replica = new Replica(this, this.options, index, incarnation);
    this.incarnations.push(replica);
    void replica.run().then((reason) => {
      if (reason === null || this.stopped) return;
      const at = ((Date.now() - this.startedAt) / 1000).toFixed(1);
      this.deathReasons.push(`replica ${replica.id} exited at ${at} s: ${reason}`);
      const delay = (this.backoffs[index] as CrashLoopBackoff).nextDelayMs(replica.ranMs());
      setTimeout(() => {
        if (this.stopped) return;
        this.restarts += 1;
        this.launch(index, incarnation + 1);
      }, delay);
    });
    return replica;
  }

  /** Kills a replica as SIGKILL would: no shutdown, its connections and answers gone. */
  kill(index: number): void {
    const replica = this.live.find((candidate) => candidate.index === index);
    replica?.exit('killed');
  }

  /** Every replica stops; nothing restarts. */
  stop(): void {
    this.stopped = true;
    for (const replica of this.live) replica.exit(null);
  }

  recordGrading(submissionId: number): void {
    this.gradings.set(submissionId, (this.gradings.get(submissionId) ?? 0) + 1);
  }

  async counts(): Promise<FleetCounts> {
    const sum = async (pick: (metrics: WatcherMetrics) => Parameters<typeof counted>[0]) => {
      const each = await Promise.all(this.incarnations.map((r) => counted(pick(r.metrics))));
      return each.reduce((total, value) => total + value, 0);
    };
    return {
      logins: await sum((m) => m.logins),
      loginTimeouts: await sum((m) => m.loginTimeouts),
      authFailures: await sum((m) => m.authFailures),
      connectionDeaths: await sum((m) => m.connectionDeaths),
      deathReasons: [...this.deathReasons],
      restarts: this.restarts,
      alive: this.live.reduce((total, replica) => total + replica.running, 0),
      gradings: new Map(this.gradings),
    };
  }
}

/** One incarnation of one replica: a process's worth of connections. */
class Replica {
  readonly id: string;
  readonly metrics: WatcherMetrics;
  readonly logger: Logger;
  readonly connections: number;
  /** Connections whose first login attempt ended (`first-login` lines), as the harness counts. */
  firstLoginsEnded = 0;
  alive = true;
  running = 0;
  readonly clients = new Map<string, XQueueClient[]>();
  private readonly stopLoops = new AbortController();
  private readonly exited: Promise<string | null>;
  private exitWith!: (reason: string | null) => void;
  private readonly started = Date.now();
  private readonly grader: (handlers: HandlerSpec[]) => Grader;
  private nextClient = 0;
  private gradeProcessor: ReturnType<typeof createGradeProcessor> | undefined;

  constructor(
    private readonly fleet: SimFleet,
    private readonly options: FleetOptions,
    readonly index: number,
    incarnation: number,
  ) {
    this.id = `r${index + 1}.${incarnation}`;
    this.metrics = createMetrics(this.id);
    // Every connection and the manager wait on this signal: more than Node's default 10.
    setMaxListeners(0, this.stopLoops.signal);
    this.connections = options.config.queues.reduce((total, queue) => total + queue.connections, 0);
    // Silent but for the watcher's event lines, which it prints at any level.
    this.logger = pino(
      { level: 'silent' },
      {
        write: (line: string) => {
          if (line.includes('"event":"first-login"')) this.firstLoginsEnded += 1;
          options.onLine(line);
        },
      },
    );
    this.exited = new Promise((resolve) => {
      this.exitWith = resolve;
    });
    const random = options.random;
    const graders = new Map<string, Grader>();
    this.grader = (handlers) => {
      const key = JSON.stringify(handlers);
      let grader = graders.get(key);
      if (!grader) {
        grader = chainGraders(handlers.map((spec) => createGrader(spec, { sleep, random })));
        graders.set(key, grader);
      }
      return grader;
    };
  }

  ranMs(): number {
    return Date.now() - this.started;
  }

  exit(reason: string | null): void {
    if (!this.alive) return;
    this.alive = false;
    this.stopLoops.abort();
    this.exitWith(reason);
  }

  /** The grading processor of this replica (BullMQ's, called in process), built once. */
  get processor() {
    this.gradeProcessor ??= createGradeProcessor({
      graderFor: this.grader,
      clientFor: (_serverUrl, queue) => {
        const list = this.clients.get(queue) ?? [];
        return list.length > 0 ? list[this.nextClient++ % list.length] : undefined;
      },
      metrics: this.metrics,
      logger: this.logger,
      now: Date.now,
    });
    return this.gradeProcessor;
  }

  /** Runs until the replica exits; resolves with why (null: stopped on purpose). */
  async run(): Promise<string | null> {
    const { options } = this;
    await sleep(options.startupMs, this.stopLoops.signal);
    if (!this.alive) return this.exited;
    const { manager } = options.config;
    const address = `10.1.${this.index}.${1 + (Number(this.id.split('.')[1]) % 250)}`;
    const fetch = options.lms.fetchFor({ address, alive: () => this.alive });
    const ends: ConnectionEnd[] = [];
    const processor = this.processor;
    let ordinal = 0;
    for (const queue of options.config.queues) {
      for (let c = 0; c < queue.connections; c++) {
        const index = ordinal++;
        const client = createWatcherClient({
          serverUrl: queue.serverUrl,
          queue: queue.sentName,
          username: queue.username,
          password: queue.password,
          mode: options.mode,
          instanceId: null,
          requestsTimeoutMs: manager.requestsTimeoutMs,
          httpBasicAuth: manager.httpBasicAuth,
          verifyTls: manager.verifyTls,
          metrics: this.metrics,
          logger: this.logger,
          now: Date.now,
          fetch,
        });
        this.clients.set(queue.sentName, [...(this.clients.get(queue.sentName) ?? []), client]);
        const shared = {
          client,
          jobMeta: {
            handlers: queue.handlers,
            serverUrl: queue.serverUrl,
            queue: queue.sentName,
            pulledBy: `${this.id}/${index}`,
          },
          pollIntervalMs: manager.pollIntervalMs,
          loginPollIntervalMs: manager.loginPollIntervalMs,
          sleep,
          now: Date.now,
          metrics: this.metrics,
          // As the replica's: its lines name the connection (here with the incarnation).
          logger: this.logger.child({ connection: `${this.id}/${index}` }),
          signal: this.stopLoops.signal,
        };
        this.running += 1;
        const loop =
          options.mode === 'hardened'
            ? runHardenedPuller({
                ...shared,
                random: options.random,
                enqueue: async (jobId, data) => this.fleet.jobs.add(jobId, data),
              }).then((): ConnectionEnd => ({ kind: 'stopped' }))
            : runConnection({
                ...shared,
                grade: async (jobId, data) => {
                  const result = await processor({ id: jobId, data, attemptsMade: 0 } as SimJob);
                  if (this.alive) this.fleet.recordGrading(data.submissionId);
                  return result;
                },
              });
        void loop.then((end) => {
          this.running -= 1;
          if (end.kind === 'died' && this.alive) {
            this.metrics.connectionDeaths.inc({ queue: queue.sentName });
            ends.push(end);
          }
        });
      }
    }
    // As upstream's Manager.wait: a dead connection takes the whole process down.
    void managerWait({
      ends,
      pollTimeMs: manager.pollTimeMs,
      sleep,
      signal: this.stopLoops.signal,
    }).then((reason) => this.exit(reason));
    return this.exited;
  }
}

interface JobState {
  data: GradeJobData;
  attemptsMade: number;
  state: 'waiting' | 'active' | 'completed' | 'failed';
  holder: Replica | null;
}

/**
 * The hardened mode's grading queue, as BullMQ runs it for every replica: a job id is added
 * once; each live replica takes up to `concurrency` jobs of a queue at a time; a failed attempt
 * is retried with GRADE_JOB_OPTIONS' exponential backoff; a job whose replica died goes back to
 * waiting once its lock lapses.
 */
class SimJobs {
  private readonly jobs = new Map<string, JobState>();
  private readonly waiting: string[] = [];
  private readonly active = new Map<Replica, number>();

  constructor(
    private readonly fleet: SimFleet,
    private readonly options: FleetOptions,
  ) {}

  add(jobId: string, data: GradeJobData): { fresh: boolean } {
    if (this.jobs.has(jobId)) return { fresh: false };
    this.jobs.set(jobId, { data, attemptsMade: 0, state: 'waiting', holder: null });
    this.waiting.push(jobId);
    this.pump();
    return { fresh: true };
  }

  private pump() {
    for (;;) {
      const replica = this.fleet.live.find(
        (candidate) => (this.active.get(candidate) ?? 0) < this.options.concurrency,
      );
      const jobId = this.waiting[0];
      if (!replica || jobId === undefined) return;
      this.waiting.shift();
      this.start(replica, jobId);
    }
  }

  private start(replica: Replica, jobId: string) {
    const job = this.jobs.get(jobId) as JobState;
    job.state = 'active';
    job.holder = replica;
    this.active.set(replica, (this.active.get(replica) ?? 0) + 1);
    const processor = replica.processor;
    const attempt = { id: jobId, data: job.data, attemptsMade: job.attemptsMade } as SimJob;
    const release = () => this.active.set(replica, (this.active.get(replica) ?? 1) - 1);
    const lapse = setTimeout(() => {
      // The holder died: BullMQ's stalled check hands the job to another worker.
      if (replica.alive || job.state !== 'active' || job.holder !== replica) return;
      release();
      job.state = 'waiting';
      job.holder = null;
      this.waiting.push(jobId);
      this.pump();
    }, this.options.jobLockMs);
    processor(attempt).then(
      () => {
        if (!replica.alive) return; // killed before BullMQ heard of it: the lock lapses
        clearTimeout(lapse);
        this.fleet.recordGrading(job.data.submissionId);
        job.state = 'completed';
        release();
        this.pump();
      },
      (error: Error) => {
        if (!replica.alive) return;
        clearTimeout(lapse);
        release();
        job.attemptsMade += 1;
        const attempts = GRADE_JOB_OPTIONS.attempts ?? 1;
        if (error.name === 'UnrecoverableError' || job.attemptsMade >= attempts) {
          job.state = 'failed';
        } else {
          job.state = 'waiting';
          const backoff = GRADE_JOB_OPTIONS.backoff;
          const base = typeof backoff === 'object' ? (backoff.delay ?? 0) : (backoff ?? 0);
          setTimeout(
            () => {
              this.waiting.push(jobId);
              this.pump();
            },
            base * 2 ** (job.attemptsMade - 1),
          );
        }
        this.pump();
      },
    );
  }
}
