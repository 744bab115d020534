/**
 * A request the client can pipeline: it knows how to append its own message to a send buffer
 * and how to name itself in an error. Requests are plain values built by the functions in this
 * folder (addRoute, setLink, ...), so a reconciler can build a whole plan's worth of them and
 * hand them to Rtnl.batch() in one call.
 */
import type { NetlinkWriter } from '../codec/writer.js';
import type { NlMsgHeader } from '../codec/header.js';
import type { NetlinkRequestError } from '../errors.js';

/**
 * Receive-buffer bytes one plain ack occupies, with margin. The kernel charges every queued
 * answer its skb truesize (measured: about 830 bytes for an ack, with or without an ext-ack
 * message), not its 36 bytes of payload — so this, not the message size, bounds the pipeline.
 */
export const ACK_BUDGET = 1280;

export interface RtnlRequest {
  /** What is done, e.g. 'route add', 'link set'. */
  readonly operation: string;
  /** The key fields an operator would recognise, e.g. '198.51.100.0/24 table 100'. */
  readonly target: string;
  /**
   * Appends this request as one message with the given sequence number. The flags must include
   * NLM_F_REQUEST and NLM_F_ACK: the ack (or error) is how the client knows it is finished.
   */
  write(w: NetlinkWriter, seq: number): void;
  /** Receive-buffer bytes its answers may take (default ACK_BUDGET); larger for GET requests. */
  readonly replyBudget?: number;
  /** Decodes a data reply (e.g. the RTM_NEWLINK answering a GET); absent: replies are ignored. */
  decodeReply?(buf: Buffer, off: number, header: NlMsgHeader): unknown;
}

/**
 * The outcome of one request of a batch, at the same index as the request. A success is a shared
 * frozen object unless it carries data replies: a 65k-route batch allocates nothing per success.
 */
export type BatchResult = { readonly ok: true; readonly replies?: unknown[] } | { readonly ok: false; readonly error: NetlinkRequestError };
