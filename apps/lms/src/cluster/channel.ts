import type { AccountRates, StormAlert } from '@storm-lab/session-policy';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { LiveSeries } from '../ops/live-stats.ts';

// The one IPC protocol between the primary of LMS_WORKERS and its workers. Either side sends a
// request (a topic and its question) and the other answers it with a reply of the same id: a
// worker asks the primary (the storm detector, the whole LMS's metrics or series), and the
// primary fans a request out to every worker and gathers their answers.

export const REQUEST = 'lms:ask';
export const REPLY = 'lms:answer';
/** How long either side waits for a reply (a fan-out waits as long for every worker at once). */
export const REQUEST_TIMEOUT_MS = 5_000;

export interface RequestMessage {
  type: typeof REQUEST;
  id: number;
  topic: string;
  question: unknown;
}

export interface ReplyMessage {
  type: typeof REPLY;
  id: number;
  answer?: unknown;
  error?: string;
}

/** A map of topics: what each request carries and what its answer is. */
export type Topics<T> = { [K in keyof T]: { question: unknown; answer: unknown } };

/** What a worker asks the primary. */
export interface PrimaryTopics {
  /** Every worker's metrics, summed (prom-client's cluster aggregation). */
  metrics: { question: Record<string, never>; answer: string };
  /** One login (and its evictions) for the LMS-wide storm detector. */
  'storm-record': {
    question: { account: string; at: number; evicted: number };
    answer: StormAlert[];
  };
  'storm-rates': { question: { at: number }; answer: AccountRates[] };
  /** The dashboard's per-second series of every worker, for the same seconds, added up. */
  'live-series': { question: { seconds: number; at: number }; answer: LiveSeries };
}

/** What the primary asks each worker, to add the answers up. */
export interface WorkerTopics {
  /** This worker's registry as `getMetricsAsJSON` gives it, for `AggregatorRegistry.aggregate`. */
  metrics: {
    question: Record<string, never>;
    answer: MetricObjectWithValues<MetricValue<string>>[];
  };
  /** This worker's per-second series; every worker is asked with the same `at`. */
  'live-series': { question: { seconds: number; at: number }; answer: LiveSeries };
}

/** How one side answers each topic it is asked. */
export type Handlers<T extends Topics<T>> = {
  [K in keyof T]: (question: T[K]['question']) => Promise<T[K]['answer']>;
};

/** The other side of the channel, as one side sees it. */
export interface Peer {
  /** For messages: "the primary", "worker 3". */
  name: string;
  send(message: RequestMessage | ReplyMessage): void;
}

/**
 * The reply to one message, or null when the message is not a request on one of `handlers`'
 * topics. A handler's error goes back as its message.
 *
 * @example
 * const reply = replyTo(handlers, message);
 * if (reply) void reply.then((answer) => peer.send(answer));
 */
export function replyTo<T extends Topics<T>>(
  handlers: Handlers<T>,
  message: unknown,
): Promise<ReplyMessage> | null {
  const request = message as RequestMessage | null;
  // An own property only: `in` would take `toString` or `__proto__` for a topic.
  if (request?.type !== REQUEST || !Object.hasOwn(handlers, request.topic)) return null;
  const handler = handlers[request.topic as keyof T] as (question: unknown) => Promise<unknown>;
  return handler(request.question).then(
    (answer) => ({ type: REPLY, id: request.id, answer }),
    (error: Error) => ({ type: REPLY, id: request.id, error: error.message }),
  );
}

/** One side of the channel: it asks topics of `Asks` and answers topics of `Answers`. */
export interface Endpoint<Asks extends Topics<Asks>> {
  /** Sends a request to `peer`; rejects with its error, or when it is not answered in time. */
  request<K extends keyof Asks & string>(
    peer: Peer,
    topic: K,
    question: Asks[K]['question'],
  ): Promise<Asks[K]['answer']>;
  /** Takes one message from `peer`: answers a request, settles the request a reply is for. */
  receive(peer: Peer, message: unknown): void;
}

export interface EndpointOptions {
  /** How long a request waits for its reply. */
  timeoutMs: number;
}

/**
 * Creates one side of the channel. Its pending requests live in the object it returns.
 *
 * @example
 * const worker = createEndpoint<PrimaryTopics, WorkerTopics>(handlers, { timeoutMs: 5_000 });
 * process.on('message', (message) => worker.receive(primary, message));
 * const alerts = await worker.request(primary, 'storm-record', { account, at, evicted: 1 });
 */
export function createEndpoint<Asks extends Topics<Asks>, Answers extends Topics<Answers>>(
  handlers: Handlers<Answers>,
  { timeoutMs }: EndpointOptions,
): Endpoint<Asks> {
  let next = 0;
  const waiting = new Map<number, (reply: ReplyMessage) => void>();
  return {
    request: (peer, topic, question) =>
      new Promise((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`${peer.name} did not answer "${topic}" in time`));
        }, timeoutMs);
        waiting.set(id, (reply) => {
          clearTimeout(timer);
          waiting.delete(id);
          if (reply.error === undefined) resolve(reply.answer as never);
          else reject(new Error(reply.error));
        });
        peer.send({ type: REQUEST, id, topic, question });
      }),
    receive(peer, message) {
      const reply = message as ReplyMessage | null;
      if (reply?.type === REPLY) return waiting.get(reply.id)?.(reply);
      void replyTo(handlers, message)?.then((answer) => peer.send(answer));
    },
  };
}
