import { setMaxListeners } from 'node:events';
import { CrashLoopBackoff, type SuperviseOptions } from '@storm-lab/harness';
import type { XQueueClient } from '@storm-lab/lms-client';
import {
  addGradeJob,
  type ConnectionEnd,
  chainGraders,
  createGradeProcessor,
  createGrader,
  createMetrics,
  createWatcherClient,
  type GradeJobData,
  type Grader,
  gradeQueueName,
  type HandlerSpec,
  managerWait,
  runConnection,
  runHardenedPuller,
  type Sleep,
  type WatcherConfig,
  type WatcherMetrics,
  type WatcherMode,
} from '@storm-lab/watcher';
import { type Logger, pino } from 'pino';
import type { SimLms } from './lms-host.ts';
import type { TimingNoise } from './noise.ts';
import type { Random } from './random.ts';
import { sleep as onTime } from './virtual-clock.ts';

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
  /**
   * Timing noise (see `SimSettings.noise`): a BullMQ job's hand-over and (upstream's mode) its
   * completion reaching the connection, and a watcher timer's lateness, drawn per job and timer.
   */
  noise: Pick<TimingNoise, 'handOverMs' | 'completionMs' | 'timerLatenessMs'>;
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

const FIRST_LOGINS_WAIT_MS = 10_000;

/** A BullMQ job as the processor reads it: its id, data and attempts so far. */
type SimJob = Parameters<ReturnType<typeof createGradeProcessor>>[0];
/** The BullMQ queue `addGradeJob` takes; the simulator's answers what that function calls. */
type Queue = Parameters<typeof addGradeJob>[0];
type JobsOptions = NonNullable<Parameters<Queue['add']>[2]>;

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
    this.jobs = new SimJobs(options, (submissionId) => this.recordGrading(submissionId));
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
      await onTime(20);
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
  /** As the replica's round robin: the next client per queue, so results reuse logins. */
  private readonly nextClient = new Map<string, number>();
  private gradeProcessor: ReturnType<typeof createGradeProcessor> | undefined;
  /** The watcher's timers (its loops, graders, manager): each fires its drawn lateness late. */
  private readonly sleep: Sleep;

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
    const { noise } = options;
    this.sleep = (ms, signal) => onTime(ms + noise.timerLatenessMs(), signal);
    const graders = new Map<string, Grader>();
    this.grader = (handlers) => {
      const key = JSON.stringify(handlers);
      let grader = graders.get(key);
      if (!grader) {
        grader = chainGraders(
          handlers.map((spec) => createGrader(spec, { sleep: this.sleep, random })),
        );
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
        if (list.length === 0) return undefined;
        const next = this.nextClient.get(queue) ?? 0;
        this.nextClient.set(queue, next + 1);
        return list[next % list.length];
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
    // The process's start-up, not one of its timers.
    await onTime(options.startupMs, this.stopLoops.signal);
    if (!this.alive) return this.exited;
    const { manager } = options.config;
    const address = `10.1.${this.index}.${1 + (Number(this.id.split('.')[1]) % 250)}`;
    const fetch = options.lms.fetchFor({ address, alive: () => this.alive });
    // How each connection ended, by its place in start order (what the manager looks at).
    const ends: (ConnectionEnd | undefined)[] = [];
    const processor = this.processor;
    if (options.mode === 'hardened') {
      this.fleet.jobs.startWorkers(
        this,
        options.config.queues.map((queue) => queue.sentName),
      );
    }
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
          sleep: this.sleep,
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
                enqueue: (jobId, data) =>
                  addGradeJob(this.fleet.jobs.queueFor(queue.sentName), jobId, data),
              }).then((): ConnectionEnd => ({ kind: 'stopped' }))
            : runConnection({
                ...shared,
                grade: async (jobId, data) => {
                  // The lab's watcher grades through a BullMQ job it waits on: with timing noise,
                  // the job's hand-over before, and its completion reaching the connection after.
                  // (No await at all without them, so runs without noise go as they went.)
                  const handOver = options.noise.handOverMs();
                  if (handOver > 0) await onTime(handOver);
                  const result = await processor({ id: jobId, data, attemptsMade: 0 } as SimJob);
                  if (this.alive) this.fleet.recordGrading(data.submissionId);
                  const completion = options.noise.completionMs();
                  if (completion > 0) await onTime(completion);
                  return result;
                },
              });
        void loop.then((end) => {
          this.running -= 1;
          if (end.kind === 'died' && this.alive) {
            this.metrics.connectionDeaths.inc({ queue: queue.sentName });
            ends[index] = end;
          }
        });
      }
    }
    // As upstream's Manager.wait: a dead connection takes the whole process down.
    void managerWait({
      ends,
      connections: ordinal,
      pollTimeMs: manager.pollTimeMs,
      sleep: this.sleep,
      signal: this.stopLoops.signal,
    }).then((reason) => this.exit(reason));
    return this.exited;
  }
}

interface JobState {
  data: GradeJobData;
  /** The options `addGradeJob` added it with (attempts, backoff). */
  options: JobsOptions;
  attemptsMade: number;
  state: 'waiting' | 'active' | 'delayed' | 'completed' | 'failed';
  holder: Worker | null;
}

/** What the job queues need of a replica: whether it lives, and its grading processor. */
type JobHolder = Pick<Replica, 'alive' | 'processor'>;

/** One replica's BullMQ Worker on one grading queue: up to `concurrency` jobs at once. */
interface Worker {
  replica: JobHolder;
  active: number;
}

/** One BullMQ queue (`grade-<queue>`), shared by every replica. */
interface GradeQueue {
  jobs: Map<string, JobState>;
  waiting: string[];
  /**
   * Workers blocked waiting for a job, in the order they blocked: Redis hands a new job's marker
   * to the client that has waited longest, and a worker that took jobs blocks again at the end.
   */
  blocked: Worker[];
}

/**
 * The hardened mode's grading queues, as BullMQ runs them for every replica, behind the watcher's
 * own `addGradeJob` (one job per pull key; a failed one retried when its pull is served again).
 * Each live replica has a worker per queue taking up to `concurrency` jobs: the worker that has
 * waited longest takes a new job, and greedily more while any wait; a finishing job's worker
 * takes the next waiting one. A failed attempt is retried with the job's exponential backoff
 * (GRADE_JOB_OPTIONS, as added); a job whose replica died goes back to waiting once its lock
 * lapses. With timing noise, the processor starts a job a drawn hand-over after the worker took
 * it (BullMQ's round trips through Redis, measured by `measureLabNoise`); without, at once.
 */
export class SimJobs {
  private readonly queues = new Map<string, GradeQueue>();
  private readonly facades = new Map<string, Queue>();

  constructor(
    private readonly options: Pick<FleetOptions, 'concurrency' | 'jobLockMs' | 'noise'>,
    private readonly recordGrading: (submissionId: number) => void,
  ) {}

  private queue(name: string): GradeQueue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = { jobs: new Map(), waiting: [], blocked: [] };
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** A replica's workers start (before its connections, as `startReplica` readies BullMQ). */
  startWorkers(replica: JobHolder, queueNames: readonly string[]): void {
    for (const name of new Set(queueNames.map(gradeQueueName))) {
      this.queue(name).blocked.push({ replica, active: 0 });
      this.pump(name);
    }
  }

  /**
   * The BullMQ queue `addGradeJob` reads and adds to: `getJob` (with `isFailed` and `retry`) and
   * `add` with a job id, which BullMQ ignores when the id exists.
   */
  queueFor(xqueueName: string): Queue {
    const name = gradeQueueName(xqueueName);
    let facade = this.facades.get(name);
    if (!facade) {
      const queue = this.queue(name);
      const handle = (jobId: string) => ({
        id: jobId,
        isFailed: async () => queue.jobs.get(jobId)?.state === 'failed',
        retry: async () => {
          const job = queue.jobs.get(jobId);
          if (job?.state !== 'failed') return;
          job.state = 'waiting';
          queue.waiting.push(jobId);
          this.pump(name);
        },
      });
      const simulated = {
        getJob: async (jobId: string) => (queue.jobs.has(jobId) ? handle(jobId) : undefined),
        add: async (_jobName: string, data: GradeJobData, options: JobsOptions = {}) => {
          const jobId = options.jobId as string;
          if (!queue.jobs.has(jobId)) {
            queue.jobs.set(jobId, {
              data,
              options,
              attemptsMade: 0,
              state: 'waiting',
              holder: null,
            });
            queue.waiting.push(jobId);
            this.pump(name);
          }
          return handle(jobId);
        },
      };
      facade = simulated as unknown as Queue;
      this.facades.set(name, facade);
    }
    return facade;
  }

  /** Hands waiting jobs to the longest-blocked live workers, each taking what it can. */
  private pump(name: string) {
    const queue = this.queue(name);
    while (queue.waiting.length > 0) {
      const worker = queue.blocked.shift();
      if (!worker) return;
      if (!worker.replica.alive) continue;
      this.fill(name, worker);
      if (worker.active < this.options.concurrency) queue.blocked.push(worker);
    }
  }

  /** A worker that is fetching takes waiting jobs until it is full or none is left. */
  private fill(name: string, worker: Worker) {
    const queue = this.queue(name);
    while (worker.active < this.options.concurrency) {
      const jobId = queue.waiting.shift();
      if (jobId === undefined) return;
      this.start(name, worker, jobId);
    }
  }

  private start(name: string, worker: Worker, jobId: string) {
    const queue = this.queue(name);
    const job = queue.jobs.get(jobId) as JobState;
    const { replica } = worker;
    job.state = 'active';
    job.holder = worker;
    worker.active += 1;
    const attempt = { id: jobId, data: job.data, attemptsMade: job.attemptsMade } as SimJob;
    // Done with this job: the worker fetches the next one, or blocks again at the end.
    const release = () => {
      worker.active -= 1;
      if (!replica.alive) return;
      this.fill(name, worker);
      if (worker.active < this.options.concurrency && !queue.blocked.includes(worker)) {
        queue.blocked.push(worker);
      }
    };
    const lapse = setTimeout(() => {
      // The holder died: BullMQ's stalled check hands the job to another worker.
      if (replica.alive || job.state !== 'active' || job.holder !== worker) return;
      worker.active -= 1;
      job.state = 'waiting';
      job.holder = null;
      queue.waiting.push(jobId);
      this.pump(name);
    }, this.options.jobLockMs);
    // BullMQ's hand-over: the worker's processor starts the job this long after it was taken.
    const handOver = this.options.noise.handOverMs();
    const run = () => {
      // Gone meanwhile: the job stays with the dead holder until its lock lapses.
      if (replica.alive) this.process(name, worker, job, attempt, lapse, release);
    };
    if (handOver > 0) setTimeout(run, handOver);
    else run();
  }

  /** Runs one attempt on its holder's processor and records how it ended. */
  private process(
    name: string,
    { replica }: Worker,
    job: JobState,
    attempt: SimJob,
    lapse: ReturnType<typeof setTimeout>,
    release: () => void,
  ) {
    const queue = this.queue(name);
    const jobId = attempt.id as string;
    replica.processor(attempt).then(
      () => {
        if (!replica.alive) return; // killed before BullMQ heard of it: the lock lapses
        clearTimeout(lapse);
        this.recordGrading(job.data.submissionId);
        job.state = 'completed';
        release();
      },
      (error: Error) => {
        if (!replica.alive) return;
        clearTimeout(lapse);
        job.attemptsMade += 1;
        const attempts = job.options.attempts ?? 1;
        if (error.name === 'UnrecoverableError' || job.attemptsMade >= attempts) {
          job.state = 'failed';
        } else {
          job.state = 'delayed';
          const backoff = job.options.backoff;
          const base = typeof backoff === 'object' ? (backoff.delay ?? 0) : (backoff ?? 0);
          setTimeout(
            () => {
              job.state = 'waiting';
              queue.waiting.push(jobId);
              this.pump(name);
            },
            base * 2 ** (job.attemptsMade - 1),
          );
        }
        release();
      },
    );
  }
}
