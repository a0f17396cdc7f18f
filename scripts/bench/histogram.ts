// A log-linear latency histogram (HDR-style: 2 significant digits over 1 µs … 100 s), small
// enough to ship between processes as JSON and merge.
const SUB_BUCKETS = 128;
const MAX_EXP = 27; // 2^27 µs ≈ 134 s

export class Histogram {
  counts = new Float64Array(SUB_BUCKETS * (MAX_EXP + 1));
  total = 0;
  sumUs = 0;
  maxUs = 0;

  record(latencyUs: number): void {
    const v = Math.max(1, Math.round(latencyUs));
    this.counts[this.index(v)]! += 1;
    this.total++;
    this.sumUs += v;
    if (v > this.maxUs) this.maxUs = v;
  }

  private index(v: number): number {
    if (v < SUB_BUCKETS) return v;
    const exp = Math.min(MAX_EXP, Math.floor(Math.log2(v / SUB_BUCKETS)) + 1);
    const sub = Math.min(SUB_BUCKETS - 1, Math.floor(v / 2 ** exp));
    return exp * SUB_BUCKETS + sub;
  }

  private valueAt(index: number): number {
    const exp = Math.floor(index / SUB_BUCKETS);
    const sub = index % SUB_BUCKETS;
    return exp === 0 ? sub : (sub + 0.5) * 2 ** exp;
  }

  percentileUs(p: number): number {
    if (this.total === 0) return 0;
    const rank = Math.ceil((p / 100) * this.total);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return this.valueAt(i);
    }
    return this.maxUs;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
    this.sumUs += other.sumUs;
    this.maxUs = Math.max(this.maxUs, other.maxUs);
  }

  toJSON(): { counts: [number, number][]; total: number; sumUs: number; maxUs: number } {
    const counts: [number, number][] = [];
    this.counts.forEach((c, i) => {
      if (c > 0) counts.push([i, c]);
    });
    return { counts, total: this.total, sumUs: this.sumUs, maxUs: this.maxUs };
  }

  static fromJSON(j: ReturnType<Histogram["toJSON"]>): Histogram {
    const h = new Histogram();
    for (const [i, c] of j.counts) h.counts[i] = c;
    h.total = j.total;
    h.sumUs = j.sumUs;
    h.maxUs = j.maxUs;
    return h;
  }

  summary(): { count: number; meanMs: number; p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number } {
    return {
      count: this.total,
      meanMs: this.total ? this.sumUs / this.total / 1000 : 0,
      p50Ms: this.percentileUs(50) / 1000,
      p99Ms: this.percentileUs(99) / 1000,
      p999Ms: this.percentileUs(99.9) / 1000,
      maxMs: this.maxUs / 1000,
    };
  }
}
