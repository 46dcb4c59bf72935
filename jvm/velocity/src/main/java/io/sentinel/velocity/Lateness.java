package io.sentinel.velocity;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.TreeMap;

/**
 * The latest event time per Kafka partition and the allowed lateness (microseconds): the same
 * logic as {@code streaming/velocity_state.py} (Lateness). An event more than the lateness
 * behind its partition's latest earlier time is too late; the horizon is the minimum over the
 * partitions of their latest time, less the lateness.
 */
public final class Lateness {
  private final long lateness;
  private final Map<Integer, Long> maxima;

  public Lateness(long lateness, Map<Integer, Long> maxima) {
    this.lateness = lateness;
    this.maxima = new TreeMap<>(maxima);
  }

  /** True when the event (the next of its partition by offset) is too late; the partition's
   * latest time is updated either way. */
  public boolean decide(int partition, Long t) {
    Long prior = maxima.get(partition);
    boolean late = t != null && prior != null && t < prior - lateness;
    if (t != null && (prior == null || t > prior)) {
      maxima.put(partition, t);
    }
    return late;
  }

  /** The earliest time an accepted event can still have (null before any event). */
  public Long horizon() {
    if (maxima.isEmpty()) {
      return null;
    }
    long min = Long.MAX_VALUE;
    for (long t : maxima.values()) {
      min = Math.min(min, t);
    }
    return min - lateness;
  }

  public byte[] encode() {
    try {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      DataOutputStream out = new DataOutputStream(bytes);
      out.writeInt(maxima.size());
      for (Map.Entry<Integer, Long> e : maxima.entrySet()) {
        out.writeInt(e.getKey());
        out.writeLong(e.getValue());
      }
      out.flush();
      return bytes.toByteArray();
    } catch (IOException exc) {
      throw new UncheckedIOException(exc);
    }
  }

  public static Lateness decode(byte[] data, long lateness) {
    Map<Integer, Long> maxima = new TreeMap<>();
    if (data != null) {
      try {
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(data));
        int n = in.readInt();
        for (int i = 0; i < n; i++) {
          maxima.put(in.readInt(), in.readLong());
        }
      } catch (IOException exc) {
        throw new UncheckedIOException(exc);
      }
    }
    return new Lateness(lateness, maxima);
  }
}
