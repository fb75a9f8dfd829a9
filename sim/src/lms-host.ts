import { createHash } from 'node:crypto';
import { createApp, type LmsConfig, type LmsDatabase, type PasswordChecker } from '@storm-lab/lms';
import type { FetchLike } from '@storm-lab/lms-client';
import {
  decodeSubmission,
  parseEnvelope,
  parseXQueueHeader,
  XQUEUE_PATHS,
} from '@storm-lab/xqueue-protocol';
import type { Logger } from 'pino';
import type { Random } from './random.ts';
import { pause, sleep, WholeMs } from './virtual-clock.ts';
import { responseOf, type WireAnswer, type WireRequest, wireServer } from './wire.ts';

/** What the LMS's capacity is made of; only these are modelled, the rest is the LMS's own code. */
export interface LmsCosts {
  /**
   * How the LMS serves: `workers` (production's Django under gunicorn/uwsgi: W synchronous
   * workers, each holding one request for its whole service time, hashing included) or
   * `event-loop` (this project's Node LMS, as `pnpm storm` runs it: one event loop does every
   * request's `requestMs` in turn, and password hashes run on W threads beside it).
   */
  model: 'workers' | 'event-loop';
  /** Synchronous workers, or (`event-loop`) the cores the hashing threads share. */
  workers: number;
  /**
   * `event-loop` only: the threads hashes run on (libuv's pool, 4 unless UV_THREADPOOL_SIZE
   * says otherwise). Up to this many hash at once on the `workers` cores (see `ThreadPool`); the
   * rest wait for a thread. Default: as many as cores (each hash at full speed, in turn).
   */
  threads?: number;
  /** Virtual nanoseconds one PBKDF2 iteration takes in a worker. */
  iterationNs: number;
  /** Service time of any request besides its password hashing, in milliseconds. */
  requestMs: number;
  /** One-way network latency between any client and the LMS, in milliseconds (the mean). */
  latencyMs: number;
  /**
   * How far each leg's latency strays from `latencyMs`, as a fraction: each leg draws it
   * uniformly from `latencyMs x (1 +/- latencyJitter)`. 0: every leg takes exactly `latencyMs`,
   * so equal costs keep clients in lockstep (see docs/simulation.md). Default 0.
   */
  latencyJitter?: number;
}

/** Faults the fault runs switch on and off while the world runs. */
export interface LmsFaults {
  /** Chance that an answered request's response never reaches its client. */
  dropResponseRate: number;
  /** Factor on every password hash's cost (1: none). */
  hashSlowdown: number;
}

/** Where a request comes from: its address, and whether its process still exists. */
export interface SimHost {
  address: string;
  /** False once the process that sent it is gone: an answer then goes nowhere. */
  alive?: () => boolean;
}

/** What the workers did, for the utilisation figure. */
export interface WorkerStats {
  /** Worker-milliseconds spent serving requests, summed over workers. */
  busyMs: number;
}

const digest = (password: string, salt: string) =>
  createHash('sha256').update(`${salt}$${password}`).digest('base64');

/** Django's layout with the simulator's digest: `pbkdf2_sha256$<iterations>$sim$<sha256>`. */
const encode = (password: string, iterations: number) =>
  `pbkdf2_sha256$${iterations}$sim$${digest(password, 'sim')}`;

/**
 * A password checker whose hashing costs virtual time instead of CPU: `iterations x
 * iterationNs`, spent by `spendMs` (by default while the request holds its worker). Hashes keep
 * Django's layout (so the LMS reads their iteration count as usual); the digest is one SHA-256,
 * not PBKDF2.
 */
export function simulatedPasswords(
  costMs: (iterations: number) => number,
  spendMs: (ms: number) => Promise<void> = sleep,
): PasswordChecker {
  const spend = (iterations: number) => spendMs(costMs(iterations));
  return {
    async verify(password, encoded) {
      const [algorithm, iterations = '', salt = '', hash] = encoded.split('$');
      await spend(Number(iterations));
      return algorithm === 'pbkdf2_sha256' && digest(password, salt) === hash;
    },
    async burn(_password, iterations) {
      await spend(iterations);
      return false;
    },
    async hash(password, iterations) {
      await spend(iterations);
      return encode(password, iterations);
    },
  };
}

/** The same hashes at no cost, for seeding the database before the world starts. */
export const freeHash = async (password: string, iterations: number) =>
  encode(password, iterations);

class WorkerPool {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  readonly stats: WorkerStats = { busyMs: 0 };

  constructor(workers: number) {
    this.free = workers;
  }

  async hold<T>(work: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free -= 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    const started = Date.now();
    try {
      return await work();
    } finally {
      this.stats.busyMs += Date.now() - started;
      const next = this.waiting.shift();
      if (next) next();
      else this.free += 1;
    }
  }
}

/** One piece of work on a {@link ThreadPool}: what is left of it, its core, who waits for it. */
interface Task {
  leftMs: number;
  core: number;
  done: () => void;
}

/**
 * The machine's other runnable threads, as measured while the lab's LMS hashed: how many there
 * were in each sample (a histogram: index threads, value samples) and how often a sample was
 * taken; `random` places them.
 */
export interface RunQueue {
  others: readonly number[];
  stepMs: number;
  random: Random;
}

/** No other runnable threads: the cores are the pool's alone. */
export const NO_OTHERS: RunQueue = { others: [1], stepMs: 10, random: () => 0 };

/**
 * Threads on fewer cores, as libuv's pool runs Node's async PBKDF2 on Linux: up to `threads`
 * tasks run at once, the rest wait for a thread in turn. A running task stays on one core (as
 * Linux keeps a thread on its core's run queue): a new one goes to the core with the fewest (the
 * first of those), and a core left with none takes one from the busiest (idle balancing). Each
 * core is shared evenly among its tasks and the machine's other runnable threads on it: for
 * every `stepMs` of virtual time, how many others there are is drawn from the measured
 * histogram, and each is put on a core drawn at random. So two hashes that start together end
 * apart when one shares its core and the other does not, as in the lab, where an even share of
 * the cores had them end together.
 */
export class ThreadPool {
  private readonly running: Task[] = [];
  private readonly waiting: Task[] = [];
  private last = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The step whose other threads `othersOn` holds, and how many sit on each core. */
  private step = Number.NaN;
  private readonly othersOn: number[];
  private readonly totalSamples: number;
  readonly stats: WorkerStats = { busyMs: 0 };

  constructor(
    private readonly cores: number,
    private readonly threads: number,
    private readonly runQueue: RunQueue = NO_OTHERS,
  ) {
    this.othersOn = Array.from({ length: cores }, () => 0);
    this.totalSamples = runQueue.others.reduce((sum, count) => sum + count, 0);
    if (!(this.totalSamples > 0) || runQueue.others.some((count) => !(count >= 0))) {
      throw new Error('others: a histogram of runnable threads, with at least one sample');
    }
  }

  /** Runs `workMs` of one core's work; resolves once it is done. */
  run(workMs: number): Promise<void> {
    return new Promise<void>((done) => {
      this.advance();
      const task = { leftMs: workMs, core: 0, done };
      if (this.running.length < this.threads) this.start(task);
      else this.waiting.push(task);
      this.schedule();
    });
  }

  private start(task: Task): void {
    const counts = this.tasksOn();
    task.core = counts.indexOf(Math.min(...counts));
    this.running.push(task);
  }

  private tasksOn(): number[] {
    const counts = Array.from({ length: this.cores }, () => 0);
    for (const task of this.running) counts[task.core] = (counts[task.core] as number) + 1;
    return counts;
  }

  /** While a core has no task and another has two or more, one moves over. */
  private balance(): void {
    for (;;) {
      const counts = this.tasksOn();
      const idle = counts.indexOf(0);
      const most = Math.max(...counts);
      if (idle < 0 || most < 2) return;
      const from = counts.indexOf(most);
      (this.running.findLast((task) => task.core === from) as Task).core = idle;
    }
  }

  /** Draws, once per step in time order, how many other threads run and on which cores. */
  private enter(step: number): void {
    if (step === this.step) return;
    this.step = step;
    const { others, random } = this.runQueue;
    let pick = random() * this.totalSamples;
    let count = others.length - 1;
    for (let index = 0; index < others.length; index++) {
      pick -= others[index] as number;
      if (pick < 0) {
        count = index;
        break;
      }
    }
    this.othersOn.fill(0);
    for (let index = 0; index < count; index++) {
      const core = Math.min(this.cores - 1, Math.floor(random() * this.cores));
      this.othersOn[core] = (this.othersOn[core] as number) + 1;
    }
  }

  /** Each running task's share of its core now (in the step `enter` drew). */
  private rates(): number[] {
    const counts = this.tasksOn();
    return this.running.map(
      (task) => 1 / ((counts[task.core] as number) + (this.othersOn[task.core] as number)),
    );
  }

  /** Moves every running task on by the time since the last look, step by step. */
  private advance(): void {
    const now = Date.now();
    const { stepMs } = this.runQueue;
    let at = this.last;
    this.last = now;
    while (at < now && this.running.length > 0) {
      this.enter(Math.floor(at / stepMs));
      const until = Math.min(now, (this.step + 1) * stepMs);
      const rates = this.rates();
      this.running.forEach((task, index) => {
        const done = (until - at) * (rates[index] as number);
        task.leftMs -= done;
        this.stats.busyMs += done;
      });
      at = until;
    }
  }

  /**
   * Ends the tasks that are done, starts waiting ones, balances the cores, and sets a timer for
   * the next end or the next step, whichever comes first.
   */
  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (let index = this.running.length - 1; index >= 0; index--) {
      const task = this.running[index] as Task;
      if (task.leftMs > 1e-9) continue;
      this.running.splice(index, 1);
      task.done();
    }
    while (this.running.length < this.threads && this.waiting.length > 0) {
      this.start(this.waiting.shift() as Task);
    }
    this.balance();
    if (this.running.length === 0) return;
    const now = Date.now();
    const { stepMs } = this.runQueue;
    this.enter(Math.floor(now / stepMs));
    const rates = this.rates();
    const nextEnd = Math.min(
      ...this.running.map((task, index) => task.leftMs / (rates[index] as number)),
    );
    const nextStep = (this.step + 1) * stepMs - now;
    // Whole milliseconds, as the virtual clock's timers are: never before the task's end.
    this.timer = setTimeout(
      () => {
        this.advance();
        this.schedule();
      },
      Math.ceil(Math.min(nextEnd, nextStep) - 1e-9),
    );
  }
}

/** One run of the LMS's process: the app, served as its HTTP server serves it. */
interface Incarnation {
  app: ReturnType<typeof createApp>;
  serve: (request: WireRequest) => Promise<WireAnswer>;
}

/** The request's own work (`own`), then the app's answer. A function, not a closure per request. */
async function respond(
  app: Incarnation,
  request: WireRequest,
  own: () => Promise<void>,
): Promise<WireAnswer> {
  await own();
  return app.serve(request);
}

function connectionRefused(): Error {
  return Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
}

export interface SimLmsOptions {
  database: LmsDatabase;
  config: LmsConfig;
  costs: LmsCosts;
  faults: LmsFaults;
  random: Random;
  logger: Logger;
  /** Count, per submission, the pulls served and the results accepted (see `door`). */
  audit?: boolean;
  /**
   * `event-loop` model: the machine's other runnable threads beside the hashing threads, as
   * measured (see {@link ThreadPool}; default none).
   */
  runQueue?: RunQueue;
  /**
   * Draws one request's round trip on the wire, in ms (recorded ones: timing noise). Each of the
   * request's two legs then takes half of it less the request's own work (`requestMs`, charged
   * as ever), in place of `latencyMs`. Default: `latencyMs` each way.
   */
  roundTripMs?: (() => number) | null;
}

/**
 * The LMS as `createApp` builds it, behind W synchronous workers and a network, called in
 * process. A request waits for a free worker (the accept queue), holds it for its service time
 * (`requestMs`, plus its PBKDF2 when it checks a password), and it and its answer each take
 * about `latencyMs` on the wire (`latencyJitter`; or half a drawn round trip, see
 * `roundTripMs`). A client that gives up (its timeout) does not stop the request: it still runs to its
 * end at the LMS, as a login a gunicorn worker has accepted does, and still evicts.
 */
export class SimLms {
  private app: Incarnation;
  /** Every incarnation, the current last: a restarted LMS's counters start again at 0. */
  private readonly apps: Incarnation[] = [];
  private readonly pool: WorkerPool;
  /** The event loop (`event-loop` model): one request's own work at a time. */
  private readonly loop = new WorkerPool(1);
  private down = false;
  readonly baseUrl = 'http://lms.sim';

  /** The hashing threads (`event-loop` model). */
  private readonly hashing: ThreadPool;
  /** The network's latency and a request's own work, in whole milliseconds. */
  private readonly latency = new WholeMs();
  private readonly requestCost: WholeMs;
  /** A request's own work (one function, not a closure per request). */
  private readonly work = async () => {
    await pause(this.requestCost.next());
  };
  private readonly onLoop = () => this.loop.hold(this.work);

  constructor(private readonly options: SimLmsOptions) {
    const { costs } = options;
    this.pool = new WorkerPool(costs.workers);
    this.requestCost = new WholeMs(costs.requestMs);
    this.hashing = new ThreadPool(costs.workers, costs.threads ?? costs.workers, options.runQueue);
    this.app = this.build();
  }

  private build(): Incarnation {
    const app = this.create();
    const incarnation = { app, serve: wireServer(app.fetch) };
    this.apps.push(incarnation);
    return incarnation;
  }

  private create() {
    const { costs, faults } = this.options;
    const costMs = (iterations: number) =>
      (iterations * costs.iterationNs * faults.hashSlowdown) / 1e6;
    return createApp({
      db: this.options.database.db,
      config: this.options.config,
      logger: this.options.logger,
      passwords:
        costs.model === 'event-loop'
          ? simulatedPasswords(costMs, (ms) => this.hashing.run(ms))
          : simulatedPasswords(costMs),
    });
  }

  /** What the workers (or, `event-loop`, the hashing threads' cores) did. */
  get workerStats(): Readonly<WorkerStats> {
    return this.options.costs.model === 'event-loop' ? this.hashing.stats : this.pool.stats;
  }

  /**
   * The LMS's own /metrics text of each incarnation so far (a restart starts its counters
   * again), read in process: no worker, no network.
   */
  async metrics(): Promise<string[]> {
    return Promise.all(this.apps.map(async ({ app }) => (await app.request('/metrics')).text()));
  }

  /**
   * Restarts the LMS over the same database: down for `downMs` (connections refused, answers in
   * flight lost), then a fresh app, as a redeployed process.
   */
  async restart(downMs: number): Promise<void> {
    this.down = true;
    await sleep(downMs);
    this.app = this.build();
    this.down = false;
  }

  /**
   * Per submission, what the LMS did at its door (with `audit`): pulls it served (a re-serve of
   * a timed-out pull counts again) and put_results it accepted, whether or not the answer then
   * reached its client.
   */
  readonly door = { served: new Map<number, number>(), accepted: new Map<number, number>() };

  private audit(url: string, init: RequestInit, answer: WireAnswer) {
    if (answer.status !== 200) return;
    const count = (map: Map<number, number>, id: number | null) => {
      if (id !== null) map.set(id, (map.get(id) ?? 0) + 1);
    };
    const envelope = parseEnvelope(String(answer.body ?? ''));
    if (!envelope.ok || envelope.value.return_code !== 0) return;
    if (url.includes(XQUEUE_PATHS.putResult)) {
      const header = new URLSearchParams(String(init.body ?? '')).get('xqueue_header');
      const parsed = parseXQueueHeader(header);
      count(this.door.accepted, parsed.ok ? parsed.value.submission_id : null);
    } else if (url.includes(XQUEUE_PATHS.getSubmission)) {
      const pulled = decodeSubmission(envelope.value.content);
      count(this.door.served, pulled.ok ? pulled.value.header.submission_id : null);
    }
  }

  /** A fetch for one host: requests from its address, answers only while it is alive. */
  fetchFor(host: SimHost): FetchLike {
    return (url, init) =>
      new Promise<Response>((resolve, reject) => {
        const signal = init.signal ?? undefined;
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        // An object, not a named arrow: tsx's keepNames would name a function on every request.
        const onAbort = {
          handleEvent() {
            reject(signal?.reason);
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.serve(host, url, init).then(
          (response) => {
            // A lost answer resolves nothing: the client's own timeout (still listening) ends it.
            if (!response || !(host.alive?.() ?? true)) return;
            signal?.removeEventListener('abort', onAbort);
            resolve(response);
          },
          (error: unknown) => {
            signal?.removeEventListener('abort', onAbort);
            reject(error);
          },
        );
      });
  }

  private async serve(host: SimHost, url: string, init: RequestInit): Promise<Response | null> {
    const { costs, faults, random, roundTripMs } = this.options;
    // A recorded round trip is drawn once and split; otherwise each leg draws its own latency.
    const half = roundTripMs ? Math.max(0, roundTripMs() - costs.requestMs) / 2 : null;
    await pause(this.latency.next(half ?? this.oneWayMs()));
    if (this.down) throw connectionRefused();
    const app = this.app;
    const request = { url, init, remoteAddress: host.address };
    const answer =
      costs.model === 'event-loop'
        ? await respond(app, request, this.onLoop)
        : await this.pool.hold(() => respond(app, request, this.work));
    if (this.options.audit) this.audit(url, init, answer);
    // Restarted meanwhile: the process that held the connection is gone, and its answer too.
    if (app !== this.app || this.down) throw connectionRefused();
    if (faults.dropResponseRate > 0 && random() < faults.dropResponseRate) return null;
    await pause(this.latency.next(half ?? this.oneWayMs()));
    return responseOf(answer);
  }

  /** One leg's latency: `latencyMs`, or drawn within `latencyJitter` of it. */
  private oneWayMs(): number {
    const { latencyMs, latencyJitter = 0 } = this.options.costs;
    if (latencyJitter === 0) return latencyMs;
    return latencyMs * (1 + latencyJitter * (2 * this.options.random() - 1));
  }
}
