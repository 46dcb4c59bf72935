package io.sentinel.velocity;

/** One accepted event as an entity's log keeps it: Kafka coordinates, id, kept field values
 * (Long, Double, String, Boolean or null; times in microseconds), by kept-field index. */
public final class Entry {
  public final int partition;
  public final long offset;
  public final String eventId;
  public final Object[] values;

  public Entry(int partition, long offset, String eventId, Object[] values) {
    this.partition = partition;
    this.offset = offset;
    this.eventId = eventId;
    this.values = values;
  }

  /** The event's time for an ordering field (null: no time). */
  public Long time(int field) {
    return (Long) values[field];
  }

  /** Order of (t1, a) and (t2, b) by (time, partition, offset). */
  static int compare(long t1, Entry a, long t2, Entry b) {
    int c = Long.compare(t1, t2);
    if (c != 0) {
      return c;
    }
    c = Integer.compare(a.partition, b.partition);
    return c != 0 ? c : Long.compare(a.offset, b.offset);
  }
}
