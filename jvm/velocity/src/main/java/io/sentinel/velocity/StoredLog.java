package io.sentinel.velocity;

import java.util.Arrays;
import java.util.Iterator;
import java.util.List;

/**
 * An entity's log as the state keeps it: a small head (last seen, timer, the horizon the log
 * was pruned to, the kept fields' names) in a value state, and the entries in chunks in a list
 * state, one chunk appended per batch that adds events. A batch therefore writes what it adds,
 * not the whole window: the list is rewritten only when pruning has made half of it stale,
 * when it holds more than {@link #MAX_CHUNKS} chunks, or when the kept fields changed.
 *
 * <p>Entries older than the stored horizon may stay in the list until that rewrite; reading
 * prunes them again with the stored horizon, so the log a batch works on is the one an eager
 * prune after every batch would have kept.
 */
public final class StoredLog {
  /** Chunks a list may hold before it is rewritten as one (bounds the per-element cost of
   * reading it). */
  static final int MAX_CHUNKS = 16;

  private StoredLog() {}

  /** An entity's log read back: its live entries (pruned to the stored horizon) as the batch's
   * {@link KeyLog}, its timer, how many entries the list holds, its chunks, and whether it was
   * written with the current fields. */
  public static final class Read {
    public final KeyLog log;
    public final long timer;
    public final Long horizon;
    public final int held;
    public final int chunks;
    public final boolean sameFields;

    Read(KeyLog log, long timer, Long horizon, int held, int chunks, boolean sameFields) {
      this.log = log;
      this.timer = timer;
      this.horizon = horizon;
      this.held = held;
      this.chunks = chunks;
      this.sameFields = sameFields;
    }
  }

  /** The state's writes after a batch: the new head, and either the whole list
   * ({@code rewrite}, empty: clear it) or one chunk to append ({@code append}, may be null). */
  public static final class Write {
    public final byte[] head;
    public final byte[][] rewrite;
    public final byte[] append;

    Write(byte[] head, byte[][] rewrite, byte[] append) {
      this.head = head;
      this.rewrite = rewrite;
      this.append = append;
    }
  }

  /** Reads a head and its chunks onto {@code fields}, pruning with {@code terms} to the stored
   * horizon ({@code keyless}: the entity's key is NULL, see {@link KeyLog}). */
  public static Read read(byte[] head, Iterator<byte[]> chunks, String[] fields, Term[] terms,
                          boolean keyless) {
    KeyLog.Head h = KeyLog.decodeHead(head, fields);
    KeyLog log = new KeyLog(List.of(), keyless);  // decoded straight into it, not copied
    int n = 0;
    while (chunks.hasNext()) {
      KeyLog.decodeChunk(chunks.next(), h, fields, log.entries);
      n++;
    }
    int held = log.entries.size();
    log.prune(terms, h.horizon);
    return new Read(log, h.timer, h.horizon, held, n, Arrays.equals(h.names, fields));
  }

  /** The horizon to prune to after a batch: the stored one or the batch's, the later. */
  public static Long horizon(Read before, Long batch) {
    Long stored = before == null ? null : before.horizon;
    if (stored == null || batch == null) {
      return stored == null ? batch : stored;
    }
    return Math.max(stored, batch);
  }

  /**
   * The writes after a batch: {@code log} (already pruned to {@code horizon}) is what the
   * entity now holds, {@code added} the events this batch accepted (in the log's order).
   */
  public static Write write(Read before, KeyLog log, List<Entry> added, Long horizon,
                            String[] fields, long seen, long timer) {
    byte[] head = KeyLog.encodeHead(fields, seen, timer, horizon);
    if (before != null) {
      int total = before.held + added.size();
      int stale = total - log.entries.size();
      boolean rewrite = !before.sameFields || (stale > 0 && stale * 2 >= total)
          || before.chunks + (added.isEmpty() ? 0 : 1) > MAX_CHUNKS;
      if (rewrite) {
        byte[][] all = log.entries.isEmpty() ? new byte[0][]
            : new byte[][] {KeyLog.encodeChunk(log.entries, fields)};
        return new Write(head, all, null);
      }
    }
    return new Write(head, null, added.isEmpty() ? null : KeyLog.encodeChunk(added, fields));
  }
}
