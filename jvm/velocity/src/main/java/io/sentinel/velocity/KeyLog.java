package io.sentinel.velocity;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The recent accepted events of one entity (key field, key value), in arrival order: the same
 * logic as {@code streaming/velocity_state.py} (KeyLog), which is its reference.
 *
 * <p>An arriving event is evaluated with the events that arrived before it (its window: time
 * within W before it, earlier in the order (time, partition, offset)); every earlier arrival
 * whose window it joins is evaluated again. A repeated event id is ignored. {@code keyless}:
 * the key is NULL, every term is NULL and the log only remembers ids.
 */
public final class KeyLog {
  /** One evaluation: the terms' values for {@code entry} after an arrival. */
  public static final class Evaluation {
    public final Entry entry;
    public final Double[] values;
    public final boolean reevaluated;
    public final int sequence;

    Evaluation(Entry entry, Double[] values, boolean reevaluated, int sequence) {
      this.entry = entry;
      this.values = values;
      this.reevaluated = reevaluated;
      this.sequence = sequence;
    }
  }

  private static final int FEW_ARRIVALS = 4;
  public final List<Entry> entries;
  /** The ids in {@code entries}, built only for a batch of many arrivals (null otherwise): a
   * few arrivals are checked against the log directly, cheaper than hashing every id. */
  private Set<Id> ids;
  private final boolean keyless;

  public KeyLog(List<Entry> entries, boolean keyless) {
    this.entries = new ArrayList<>(entries);
    this.keyless = keyless;
  }

  /** An entry's id as a set member (equal ids: equal members). */
  private static final class Id {
    private final Entry entry;
    private final int hash;

    Id(Entry entry) {
      this.entry = entry;
      this.hash = entry.idHash();
    }

    @Override
    public int hashCode() {
      return hash;
    }

    @Override
    public boolean equals(Object other) {
      return other instanceof Id && ((Id) other).hash == hash && entry.sameId(((Id) other).entry);
    }
  }

  /** Whether an event with {@code entry}'s id is in the log. */
  private boolean holds(Entry entry) {
    if (ids != null) {
      return ids.contains(new Id(entry));
    }
    for (Entry e : entries) {
      if (e.sameId(entry)) {
        return true;
      }
    }
    return false;
  }

  /** The terms' values for {@code target} among the events arrived so far (null: no window). */
  public Double[] values(Term[] terms, Entry target) {
    Double[] out = new Double[terms.length];
    for (int i = 0; i < terms.length; i++) {
      out[i] = aggregate(terms[i], target);
    }
    return out;
  }

  private Double aggregate(Term term, Entry target) {
    Long own = target.time(term.orderBy);
    if (keyless || own == null) {
      return null;
    }
    long ownT = own;
    long low = ownT - term.window;
    boolean star = term.argument < 0;
    long count = 0;
    // sum as Python does: exact over integers, left to right over doubles
    long longSum = 0;
    double doubleSum = 0;
    boolean anyDouble = false;
    Object best = null;
    int n = entries.size();
    Set<Object> distinct = term.distinct ? new HashSet<>(n + n / 2 + 2) : null;
    for (int i = -1; i < n; i++) {
      Entry m;
      if (i < 0) {
        m = target;
      } else {
        m = entries.get(i);
        if (m == target) {
          continue;
        }
        Long o = m.time(term.orderBy);
        if (o == null || o < low || Entry.compare(o, m, ownT, target) >= 0) {
          continue;
        }
      }
      if (star) {
        count++;
        continue;
      }
      Object v = m.values[term.argument];
      if (v == null) {
        continue;
      }
      count++;
      switch (term.function) {
        case "count":
          if (distinct != null) {
            distinct.add(v);
          }
          break;
        case "sum":
        case "avg":
          if (v instanceof Long && !anyDouble) {
            longSum += (Long) v;
          } else {
            if (!anyDouble) {
              anyDouble = true;
              doubleSum = longSum;
            }
            doubleSum += number(v);
          }
          break;
        case "min":
          if (best == null || compareValues(v, best) < 0) {
            best = v;
          }
          break;
        case "max":
          if (best == null || compareValues(v, best) > 0) {
            best = v;
          }
          break;
        default:
          throw new IllegalArgumentException("unknown window function " + term.function);
      }
    }
    if (star) {
      return (double) count;
    }
    switch (term.function) {
      case "count":
        return (double) (distinct != null ? distinct.size() : count);
      case "sum":
        return count == 0 ? null : (anyDouble ? doubleSum : (double) longSum);
      case "avg":
        return count == 0 ? null : (anyDouble ? doubleSum : (double) longSum) / count;
      default:
        return best == null ? null : number(best);
    }
  }

  static double number(Object v) {
    if (v instanceof Boolean) {
      return ((Boolean) v) ? 1.0 : 0.0;
    }
    return ((Number) v).doubleValue();
  }

  @SuppressWarnings("unchecked")
  private static int compareValues(Object a, Object b) {
    if (a instanceof Long && b instanceof Long) {
      return Long.compare((Long) a, (Long) b);
    }
    if (a instanceof Number && b instanceof Number) {
      return Double.compare(((Number) a).doubleValue(), ((Number) b).doubleValue());
    }
    return ((Comparable<Object>) a).compareTo(b);
  }

  /** Whether {@code fresh} falls in {@code old}'s window for some term. */
  private static boolean joins(Term[] terms, Entry fresh, Entry old) {
    for (Term term : terms) {
      Long n = fresh.time(term.orderBy);
      Long o = old.time(term.orderBy);
      if (n != null && o != null && o - term.window <= n
          && Entry.compare(n, fresh, o, old) < 0) {
        return true;
      }
    }
    return false;
  }

  /** Adds {@code arrivals} (in arrival order); returns each new event's evaluation, then the
   * re-evaluations of the earlier arrivals it joined. */
  public List<Evaluation> arrive(Term[] terms, List<Entry> arrivals, int firstSequence) {
    List<Evaluation> out = new ArrayList<>();
    int seq = firstSequence;
    if (ids == null && arrivals.size() > FEW_ARRIVALS) {
      ids = new HashSet<>(2 * (entries.size() + arrivals.size()));
      for (Entry e : entries) {
        ids.add(new Id(e));
      }
    }
    for (Entry entry : arrivals) {
      if (holds(entry)) {
        continue;
      }
      if (ids != null) {
        ids.add(new Id(entry));
      }
      int before = entries.size();
      entries.add(entry);
      out.add(new Evaluation(entry, values(terms, entry), false, seq));
      if (!keyless) {
        for (int i = 0; i < before; i++) {
          Entry old = entries.get(i);
          if (joins(terms, entry, old)) {
            out.add(new Evaluation(old, values(terms, old), true, seq));
          }
        }
      }
      seq++;
    }
    return out;
  }

  /** Forgets the events no future accepted event can have in its window (every term time
   * below horizon minus that term's window); an event without any time is kept. */
  public void prune(Term[] terms, Long horizon) {
    if (horizon == null || terms.length == 0) {
      return;
    }
    int[] field = new int[terms.length];
    long[] since = new long[terms.length];  // the oldest time each term still needs
    for (int i = 0; i < terms.length; i++) {
      field[i] = terms[i].orderBy;
      since[i] = horizon - terms[i].window;
    }
    int kept = 0;  // compacted in place: most batches forget few entries, or none
    for (int at = 0, n = entries.size(); at < n; at++) {
      Entry e = entries.get(at);
      Object[] values = e.values;
      boolean allNull = true;
      boolean recent = false;
      for (int i = 0; i < field.length && !recent; i++) {
        Object time = values[field[i]];
        if (time != null) {
          allNull = false;
          recent = (Long) time >= since[i];
        }
      }
      if (allNull || recent) {
        if (kept != at) {
          entries.set(kept, e);
        }
        kept++;
      }
    }
    if (kept != entries.size()) {
      entries.subList(kept, entries.size()).clear();
      ids = null;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Stored form ({@link StoredLog}): a head (a version, last seen and timer times, the horizon
  // the log was pruned to, the names of the kept fields) and chunks of entries (a count, then
  // per event its partition, offset, id and tagged values, in the head's field order). Decoding
  // maps stored names onto the current fields (a field no longer kept is dropped, a new one is
  // NULL for the stored events).

  private static final byte VERSION = 2;
  private static final byte NULL = 0;
  private static final byte LONG = 1;
  private static final byte DOUBLE = 2;
  private static final byte STRING = 3;
  private static final byte TRUE = 4;
  private static final byte FALSE = 5;

  /** A head: last seen and timer (milliseconds), horizon (null: never pruned), the stored
   * fields' names and where each lands in the current fields (-1: no longer kept). */
  public static final class Head {
    public final long seen;
    public final long timer;
    public final Long horizon;
    final String[] names;
    final int[] target;

    Head(long seen, long timer, Long horizon, String[] names, int[] target) {
      this.seen = seen;
      this.timer = timer;
      this.horizon = horizon;
      this.names = names;
      this.target = target;
    }
  }

  static byte[] encodeHead(String[] fields, long seen, long timer, Long horizon) {
    Writer out = new Writer(32 + 16 * fields.length);
    out.putByte(VERSION);
    out.putLong(seen);
    out.putLong(timer);
    out.putByte(horizon == null ? 0 : 1);
    out.putLong(horizon == null ? 0L : horizon);
    out.putShort(fields.length);
    for (String f : fields) {
      out.putString(f);
    }
    return out.bytes();
  }

  static Head decodeHead(byte[] data, String[] fields) {
    try {
      ByteBuffer in = ByteBuffer.wrap(data);  // big-endian, as the stored form
      byte version = in.get();
      if (version != VERSION) {
        throw new IllegalStateException("unknown velocity log version " + version);
      }
      long seen = in.getLong();
      long timer = in.getLong();
      boolean pruned = in.get() != 0;
      long horizon = in.getLong();
      int stored = in.getShort();
      Map<String, Integer> index = new HashMap<>();
      for (int i = 0; i < fields.length; i++) {
        index.put(fields[i], i);
      }
      String[] names = new String[stored];
      int[] target = new int[stored];
      for (int i = 0; i < stored; i++) {
        names[i] = readString(in);
        Integer at = index.get(names[i]);
        target[i] = at == null ? -1 : at;
      }
      return new Head(seen, timer, pruned ? horizon : null, names, target);
    } catch (BufferUnderflowException exc) {
      throw new IllegalStateException("truncated velocity log head", exc);
    }
  }

  static byte[] encodeChunk(List<Entry> entries, String[] fields) {
    Writer out = new Writer(8 + 48 * entries.size());
    out.putInt(entries.size());
    for (Entry e : entries) {
      out.putInt(e.partition);
      out.putLong(e.offset);
      e.writeId(out);
      for (int i = 0; i < fields.length; i++) {
        writeValue(out, e.values[i]);
      }
    }
    return out.bytes();
  }

  /** Appends a chunk's entries (written with {@code head}'s fields) to {@code into}, on
   * {@code fields}. */
  static void decodeChunk(byte[] data, Head head, String[] fields, List<Entry> into) {
    try {
      ByteBuffer in = ByteBuffer.wrap(data);
      int n = in.getInt();
      int[] target = head.target;
      for (int i = 0; i < n; i++) {
        int p = in.getInt();
        long o = in.getLong();
        int idLength = skipBytes(in);
        int idFrom = in.arrayOffset() + in.position() - idLength;
        Object[] values = new Object[fields.length];
        for (int j = 0; j < target.length; j++) {
          Object v = readValue(in);
          if (target[j] >= 0) {
            values[target[j]] = v;
          }
        }
        into.add(new Entry(p, o, data, idFrom, idLength, values));
      }
    } catch (BufferUnderflowException exc) {
      throw new IllegalStateException("truncated velocity log chunk", exc);
    }
  }

  /** A growing byte array written big-endian (the stored form's byte order), without the
   * per-call locking of a DataOutputStream over a ByteArrayOutputStream. */
  static final class Writer {
    private byte[] buf;
    private int pos;

    Writer(int capacity) {
      buf = new byte[Math.max(capacity, 16)];
    }

    private void room(int n) {
      if (pos + n > buf.length) {
        buf = Arrays.copyOf(buf, Math.max(buf.length * 2, pos + n));
      }
    }

    void putByte(int v) {
      room(1);
      buf[pos++] = (byte) v;
    }

    void putShort(int v) {
      room(2);
      buf[pos++] = (byte) (v >>> 8);
      buf[pos++] = (byte) v;
    }

    void putInt(int v) {
      room(4);
      for (int shift = 24; shift >= 0; shift -= 8) {
        buf[pos++] = (byte) (v >>> shift);
      }
    }

    void putLong(long v) {
      room(8);
      for (int shift = 56; shift >= 0; shift -= 8) {
        buf[pos++] = (byte) (v >>> shift);
      }
    }

    void putString(String s) {
      byte[] b = s.getBytes(StandardCharsets.UTF_8);
      putBytes(b, 0, b.length);
    }

    /** {@code length} bytes of {@code data} from {@code from}, after their count. */
    void putBytes(byte[] data, int from, int length) {
      putInt(length);
      room(length);
      System.arraycopy(data, from, buf, pos, length);
      pos += length;
    }

    byte[] bytes() {
      return Arrays.copyOf(buf, pos);
    }
  }

  /** Skips a length-prefixed run of bytes; returns its length (the run ends at {@code in}'s
   * position). */
  private static int skipBytes(ByteBuffer in) {
    int n = in.getInt();
    if (n < 0 || n > in.remaining()) {
      throw new IllegalStateException("truncated velocity log");
    }
    in.position(in.position() + n);
    return n;
  }

  private static String readString(ByteBuffer in) {
    int n = skipBytes(in);
    return new String(in.array(), in.arrayOffset() + in.position() - n, n,
        StandardCharsets.UTF_8);
  }

  private static void writeValue(Writer out, Object v) {
    if (v == null) {
      out.putByte(NULL);
    } else if (v instanceof Long) {
      out.putByte(LONG);
      out.putLong((Long) v);
    } else if (v instanceof Double) {
      out.putByte(DOUBLE);
      out.putLong(Double.doubleToLongBits((Double) v));
    } else if (v instanceof Boolean) {
      out.putByte(((Boolean) v) ? TRUE : FALSE);
    } else {
      out.putByte(STRING);
      out.putString(v.toString());
    }
  }

  private static Object readValue(ByteBuffer in) {
    byte tag = in.get();
    switch (tag) {
      case NULL:
        return null;
      case LONG:
        return in.getLong();
      case DOUBLE:
        return in.getDouble();
      case TRUE:
        return Boolean.TRUE;
      case FALSE:
        return Boolean.FALSE;
      case STRING:
        return readString(in);
      default:
        throw new IllegalStateException("unknown velocity value tag " + tag);
    }
  }
}
