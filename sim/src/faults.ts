import type { ScenarioFigures } from '@storm-lab/storm';
import { scenarioFor } from './presets.ts';
import { seededRandom } from './random.ts';
import { simulateScenario, type World } from './run.ts';
import { PRODUCTION_SETTINGS, type SimSettings } from './settings.ts';
import { sleep } from './virtual-clock.ts';

/** The fault runs' world: 10 minutes of load, faults in the first 7, then long enough to heal. */
export const FAULT_SETTINGS: SimSettings = {
  ...PRODUCTION_SETTINGS,
  students: 10,
  load: { kind: 'steady', perMinute: 12, surge: null },
  durationSeconds: 600,
  // Past the 5-minute lock: a pull lost to a fault is served again and graded.
  drainSeconds: 900,
};

const FAULT_WINDOW_SECONDS = 420;

/** One fault, when it struck (seconds after the load started). */
export interface FaultEvent {
  at: number;
  what: string;
}

/**
 * A seeded fault schedule over the first seven minutes: replicas killed (SIGKILL) and left to
 * their supervisor, one LMS restart over the same database, a window of dropped responses, a
 * window of slow hashes. Records what it did in `log`.
 */
export function faultSchedule(seed: number, log: FaultEvent[]) {
  return async (world: World): Promise<void> => {
    const random = seededRandom(seed).fork('faults');
    const started = Date.now();
    const at = () => Math.round((Date.now() - started) / 100) / 10;
    const events: { at: number; run: () => Promise<void> | void }[] = [];
    const kills = 1 + Math.floor(random() * 4);
    for (let index = 0; index < kills; index++) {
      const replica = Math.floor(random() * world.settings.replicas);
      events.push({
        at: random() * FAULT_WINDOW_SECONDS,
        run: () => {
          log.push({ at: at(), what: `kill replica ${replica + 1}` });
          world.fleet.kill(replica);
        },
      });
    }
    const restartDown = 2 + random() * 20;
    events.push({
      at: random() * FAULT_WINDOW_SECONDS,
      run: async () => {
        log.push({ at: at(), what: `LMS restart, down ${restartDown.toFixed(1)} s` });
        await world.lms.restart(restartDown * 1000);
      },
    });
    const window = (what: string, on: () => void, off: () => void) => {
      const start = random() * (FAULT_WINDOW_SECONDS - 60);
      const length = 10 + random() * 50;
      events.push({
        at: start,
        run: () => {
          log.push({ at: at(), what: `${what} for ${length.toFixed(0)} s` });
          on();
        },
      });
      events.push({ at: start + length, run: off });
    };
    const dropRate = 0.02 + random() * 0.2;
    window(
      `${Math.round(dropRate * 100)}% of responses dropped`,
      () => {
        world.faults.dropResponseRate = dropRate;
      },
      () => {
        world.faults.dropResponseRate = 0;
      },
    );
    const slowdown = 2 + random() * 8;
    window(
      `hashes ${slowdown.toFixed(1)}x slower`,
      () => {
        world.faults.hashSlowdown = slowdown;
      },
      () => {
        world.faults.hashSlowdown = 1;
      },
    );
    events.sort((a, b) => a.at - b.at);
    const pending: Promise<void>[] = [];
    for (const event of events) {
      await sleep(started + event.at * 1000 - Date.now());
      pending.push(Promise.resolve(event.run()));
    }
    await Promise.all(pending);
  };
}

/** What a fault run must leave true once its faults have stopped. */
export interface Invariants {
  /** Every submission graded. */
  allGraded: boolean;
  /**
   * Submissions graded twice: accepted under more than one pull key, or twice from one poster
   * (the watcher's lines), or accepted at the LMS's door more often than it was served there.
   */
  acceptedTwice: number[];
  /**
   * Submissions accepted under one pull key from several connections: after a lost answer to
   * get_submission, edx-submissions serves the timed-out row with the same key to every poll
   * until a result lands, so each connection that got it posts, and each post is accepted
   * (the same result; upstream's behaviour, reported, not a failure).
   */
  repeatsOfOneKey: number[];
  wrongScores: number;
  /** People holding more than one live session at the end. */
  peopleWithTwoSessions: string[];
}

export interface FaultRun {
  seed: number;
  scenario: string;
  faults: FaultEvent[];
  figures: ScenarioFigures;
  invariants: Invariants;
  ok: boolean;
  replay: string;
}

/** Runs one seed of one scenario under faults and checks the invariants. */
export async function faultRun(scenarioName: string, seed: number): Promise<FaultRun> {
  const settings = { ...FAULT_SETTINGS, seed };
  const scenario = await scenarioFor(scenarioName, settings);
  const log: FaultEvent[] = [];
  let people: string[] = [];
  const acceptedTwice: number[] = [];
  const repeatsOfOneKey: number[] = [];
  const figures = await simulateScenario(scenario, settings, {
    audit: true,
    during: faultSchedule(seed, log),
    atEnd: (world, seen) => {
      for (const [id, posts] of seen.acceptedResults) {
        const keys = new Set([...posts.keys()].map((post) => post.split(' ')[0]));
        // One poster accepted twice, or two keys accepted: graded twice.
        if (keys.size > 1 || [...posts.values()].some((count) => count > 1)) acceptedTwice.push(id);
        // One key from several connections: upstream's re-serve of a timed-out pull.
        else if (posts.size > 1) repeatsOfOneKey.push(id);
      }
      // At the LMS's door: each serve of a pull may be answered once, no more.
      for (const [id, accepted] of world.lms.door.accepted) {
        const served = world.lms.door.served.get(id) ?? 0;
        if (accepted > served && !acceptedTwice.includes(id)) acceptedTwice.push(id);
      }
      const rows = world.database.sqlite
        .prepare(
          `SELECT u.username AS username FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.expires_at > ? AND u.username LIKE 'student%'
           GROUP BY u.username HAVING count(*) > 1`,
        )
        .all(Date.now()) as { username: string }[];
      people = rows.map((row) => row.username);
    },
  });
  const invariants: Invariants = {
    allGraded: figures.graded === figures.submitted,
    acceptedTwice,
    repeatsOfOneKey,
    wrongScores: figures.wrongScores,
    peopleWithTwoSessions: scenario.lms.PREVENT_CONCURRENT_LOGINS === 'false' ? [] : people,
  };
  const ok =
    invariants.allGraded &&
    invariants.acceptedTwice.length === 0 &&
    invariants.wrongScores === 0 &&
    invariants.peopleWithTwoSessions.length === 0;
  return {
    seed,
    scenario: scenarioName,
    faults: log,
    figures,
    invariants,
    ok,
    replay: `pnpm sim --faults 1 --seed ${seed} --scenario ${scenarioName}`,
  };
}
