/**
 * A host at the far end of a TUN device that answers pings: it attaches to a persistent TUN device
 * by name with the project's own Tun library, reads its packets and writes back an echo reply
 * for every ICMP / ICMPv6 echo request (test/helpers/packets.ts builds it), ignoring the rest
 * (router solicitations, MLD reports...). While it is attached the device has carrier; stop()
 * detaches, after which the device has none and echoes through it go unanswered.
 */
import { Tun } from '../../tun-native/index.js';
import type { Netns } from './netns.js';
import { echoReplyTo } from './packets.js';

export class EchoResponder {
  /** Echo requests answered so far. */
  answered = 0;
  readonly #tun: Tun;
  readonly #loop: Promise<void>;
  #failure: unknown;

  private constructor(tun: Tun) {
    this.#tun = tun;
    this.#loop = this.#serve().catch((e: unknown) => {
      this.#failure = e;
    });
  }

  /** Attaches to the existing (persistent) TUN device `ifname` in the namespace and starts answering. */
  static async start(ns: Netns, ifname: string): Promise<EchoResponder> {
    const tun = await Tun.open({ name: ifname, mode: 'tun', netns: ns.name });
    return new EchoResponder(tun);
  }

  async #serve(): Promise<void> {
    for await (const packet of this.#tun.packets()) {
      const reply = echoReplyTo(packet);
      if (reply === undefined) continue;
      await this.#tun.write(reply);
      this.answered++;
    }
  }

  /** Detaches from the device; rejects if reading or writing had failed meanwhile. */
  async stop(): Promise<void> {
    await this.#tun.close();
    await this.#loop;
    if (this.#failure !== undefined) throw this.#failure;
  }
}
