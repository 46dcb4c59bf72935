package io.sentinel.velocity;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/** One accepted event as an entity's log keeps it: Kafka coordinates, id, kept field values
 * (Long, Double, String, Boolean or null; times in microseconds), by kept-field index.
 *
 * <p>The id is held as its UTF-8 bytes (for a stored entry, a slice of the chunk it was read
 * from): a batch compares ids and writes them back far more often than it reads one as text,
 * and a full window holds hundreds of entries per entity. */
public final class Entry {
  public final int partition;
  public final long offset;
  public final Object[] values;
  private final byte[] idBytes;
  private final int idFrom;
  private final int idLength;
  private String eventId;

  public Entry(int partition, long offset, String eventId, Object[] values) {
    this.partition = partition;
    this.offset = offset;
    this.eventId = eventId;
    this.idBytes = eventId.getBytes(StandardCharsets.UTF_8);
    this.idFrom = 0;
    this.idLength = idBytes.length;
    this.values = values;
  }

  /** A stored entry whose id is {@code length} bytes of {@code data} from {@code from}. */
  Entry(int partition, long offset, byte[] data, int from, int length, Object[] values) {
    this.partition = partition;
    this.offset = offset;
    this.idBytes = data;
    this.idFrom = from;
    this.idLength = length;
    this.values = values;
  }

  /** The event id. */
  public String eventId() {
    if (eventId == null) {
      eventId = new String(idBytes, idFrom, idLength, StandardCharsets.UTF_8);
    }
    return eventId;
  }

  /** Whether the two entries are the same event (the same id). */
  boolean sameId(Entry other) {
    return Arrays.equals(idBytes, idFrom, idFrom + idLength,
        other.idBytes, other.idFrom, other.idFrom + other.idLength);
  }

  /** The id's hash over its bytes (equal for equal ids, as {@link #sameId}). */
  int idHash() {
    int h = 1;
    for (int i = idFrom, end = idFrom + idLength; i < end; i++) {
      h = 31 * h + idBytes[i];
    }
    return h;
  }

  /** Writes the id as the stored form does (its byte length, then the bytes). */
  void writeId(KeyLog.Writer out) {
    out.putBytes(idBytes, idFrom, idLength);
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
