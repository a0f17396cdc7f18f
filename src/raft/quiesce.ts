/** Idle election timeouts (of 2 × electionRtt ticks each) before a shard quiesces. */
export const QUIESCE_IDLE_ELECTION_TIMEOUTS = 10;

/**
 * Quiesce of idle shards (engine.md §1.17). A quiesce "election timeout" is 2 × electionRtt
 * ticks; after 10 of them without activity (20 × electionRtt ticks) the replica quiesces and
 * tells the other members. Heartbeats never count as activity, but a heartbeat arriving
 * after one quiesce election timeout of being quiesced wakes the replica (someone is awake).
 */
export class QuiesceState {
  private currentTick = 0;
  private idleSinceTick = 0;
  private quiescedSinceTick = 0;
  private exitedAtTick = Number.NEGATIVE_INFINITY;
  quiesced = false;
  readonly electionTicks: number;
  readonly thresholdTicks: number;

  constructor(
    readonly enabled: boolean,
    electionRtt: number,
  ) {
    this.electionTicks = 2 * electionRtt;
    this.thresholdTicks = QUIESCE_IDLE_ELECTION_TIMEOUTS * this.electionTicks;
  }

  /** One tick; returns true when this tick made the replica quiesce. */
  tick(): boolean {
    this.currentTick++;
    if (!this.enabled || this.quiesced) return false;
    if (this.currentTick - this.idleSinceTick > this.thresholdTicks) {
      this.enter();
      return true;
    }
    return false;
  }

  /** n ticks of a quiesced replica at once: as n calls of tick(), which then only count. */
  quiescedTicks(n: number): void {
    if (!this.quiesced) throw new Error("QuiesceState.quiescedTicks: the replica is not quiesced");
    this.currentTick += n;
  }

  private enter(): void {
    this.quiesced = true;
    this.quiescedSinceTick = this.currentTick;
  }

  /** Any activity (not a plain heartbeat): resets the idle count; returns true when it woke the replica. */
  recordActivity(): boolean {
    this.idleSinceTick = this.currentTick;
    if (!this.quiesced) return false;
    this.quiesced = false;
    this.exitedAtTick = this.currentTick;
    return true;
  }

  /** A plain heartbeat: wakes a replica quiesced for at least one quiesce election timeout. */
  recordHeartbeat(): boolean {
    if (!this.quiesced) return false;
    if (this.currentTick - this.quiescedSinceTick < this.electionTicks) return false;
    return this.recordActivity();
  }

  /** A peer quiesced: follow unless this replica woke up less than one threshold ago. */
  peerQuiesced(): boolean {
    if (!this.enabled || this.quiesced) return false;
    if (this.currentTick - this.exitedAtTick <= this.thresholdTicks) return false;
    this.enter();
    return true;
  }
}
