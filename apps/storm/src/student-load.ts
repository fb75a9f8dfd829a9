import { WebClient, type WebClientOptions } from '@storm-lab/lms-client';
import { answerFor, type RunSettings, studentAddress } from './settings.ts';

/** One submission the load made, and what its grade must be. */
export interface Submitted {
  id: number;
  owner: WebClient;
  expectCorrect: boolean;
}

/** What the LMS says about a submission once polled. */
export interface Outcome {
  graded: boolean;
  correct: boolean | null;
  latencyMs: number | null;
}

export interface StudentLoadOptions {
  lmsUrl: string;
  queues: readonly string[];
  students: number;
  studentPassword: string;
  /** The right answer of a seeded problem, as the seed's grader payload holds it. */
  answerFor: (queue: string, problem: string) => string;
  /** Sends the students' requests; default the global fetch (a simulation passes its own). */
  fetch?: WebClientOptions['fetch'];
}

/**
 * How long a student keeps trying a request the LMS answers 503 "database busy" (with
 * LMS_WORKERS > 1 another worker may hold the SQLite write lock past the LMS's deadline; the 503
 * says nothing was written, so repeating it is safe).
 */
const PATIENCE = { retryForMs: 10_000 };

/**
 * Students submitting to the LMS over HTTP, each logged in with its own session. Every other
 * submission is wrong on purpose, so a grader that says "correct" to everything is caught.
 */
export class StudentLoad {
  readonly submitted: Submitted[] = [];
  private clients: WebClient[] = [];

  constructor(private readonly options: StudentLoadOptions) {}

  async logIn(): Promise<void> {
    this.clients = await Promise.all(
      Array.from({ length: this.options.students }, async (_, index) => {
        const client = new WebClient(this.options.lmsUrl, {
          forwardedFor: studentAddress(index + 1),
          ...(this.options.fetch && { fetch: this.options.fetch }),
        });
        await client.login(`student${index + 1}`, this.options.studentPassword, PATIENCE);
        return client;
      }),
    );
  }

  /** Makes submission number `index` (0-based) and remembers its expected grade. */
  async submit(index: number): Promise<void> {
    const owner = this.clients[index % this.clients.length];
    const queue = this.options.queues[index % this.options.queues.length];
    if (!owner || !queue) throw new Error('StudentLoad.logIn() must run first');
    const problem = `${queue}-p${(index % 3) + 1}`;
    const expectCorrect = index % 2 === 0;
    const answer = expectCorrect ? this.options.answerFor(queue, problem) : `wrong-${index}`;
    const response = await owner.request(
      'POST',
      '/api/submissions',
      { queue_name: queue, problem_id: problem, student_response: answer },
      PATIENCE,
    );
    const body = (await response.json()) as { id?: number };
    if (response.status !== 201 || typeof body.id !== 'number') {
      throw new Error(`submission failed: ${response.status} ${JSON.stringify(body)}`);
    }
    this.submitted.push({ id: body.id, owner, expectCorrect });
  }

  /** Asks the LMS for the state of one submission. */
  async outcome(submission: Submitted): Promise<Outcome> {
    const response = await submission.owner.request(
      'GET',
      `/api/submissions/${submission.id}`,
      undefined,
      PATIENCE,
    );
    if (!response.ok) throw new Error(`GET /api/submissions/${submission.id}: ${response.status}`);
    const body = (await response.json()) as Record<string, unknown>;
    const graded = body.state === 'graded';
    return {
      graded,
      correct: graded && typeof body.correct === 'boolean' ? body.correct : null,
      latencyMs: graded ? latencyOf(body) : null,
    };
  }
}

function latencyOf(body: Record<string, unknown>): number | null {
  const seconds = body.grading_latency_seconds;
  return typeof seconds === 'number' ? Math.round(seconds * 1000) : null;
}

/** Logs in the run's students (`student1..N`) and returns the load that submits for them. */
export async function studentLoad(
  lmsUrl: string,
  settings: RunSettings,
  queues: readonly string[],
): Promise<StudentLoad> {
  const load = new StudentLoad({
    lmsUrl,
    queues,
    students: settings.students,
    studentPassword: settings.studentPassword,
    answerFor,
  });
  await load.logIn();
  return load;
}
