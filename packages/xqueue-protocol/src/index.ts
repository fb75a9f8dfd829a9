export type { GraderReply } from './grader-reply.ts';
export { parseGraderReply } from './grader-reply.ts';
export type {
  Envelope,
  EvictionDetail,
  GradeResult,
  NotAuthenticatedBody,
  Parsed,
  PulledSubmission,
  SessionEndReason,
  StudentInfo,
  SubmissionBody,
  SubmissionContent,
  XQueueHeader,
} from './protocol.ts';
export {
  CLIENT_INSTANCE_HEADER,
  decodeSubmission,
  encodeStudentInfo,
  encodeSubmission,
  failure,
  NOT_AUTHENTICATED_DETAIL,
  parseEnvelope,
  parseGradeResult,
  parseSubmissionBody,
  parseXQueueHeader,
  SESSION_END_HEADER,
  success,
  XQUEUE_PATHS,
} from './protocol.ts';
