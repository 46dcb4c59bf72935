package io.sentinel.velocity;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.ListState;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The per-entity step, grouped by (key field, key value): the entity's {@link KeyLog}, stored as
 * a {@link StoredLog} (a head value and a list of entry chunks). A batch's arrivals are added
 * in (time, partition, offset) order; each evaluation (own or re-evaluation) becomes an output
 * row with the terms' values; too-late events pass through ({@code kind='late'}) without
 * touching the state. A processing-time timer evicts an entity idle for {@code idleMs}.
 *
 * <p>With an input column {@code rec} (the typed record) the output has two more columns
 * ({@link #output}): {@code rec} on the event's own evaluations and {@code kept} (its kept
 * fields, as {@code vals}) on re-evaluations; {@code raw} is then only on too-late rows and
 * {@code doc} is NULL. Without it, arrivals carry {@code raw} and re-evaluations {@code doc}.
 */
public final class KeyProcessor extends StatefulProcessor<String, Row, Row> {
  private static final long serialVersionUID = 1L;
  /** The rows this step emits (as streaming/velocity_processors.py, times in microseconds). */
  public static final StructType OUTPUT = StructType.fromDDL(
      "kind string, reeval boolean, seq int, kf string, p int, o long, eid string, raw string, "
          + "kts_us long, doc string, vals map<string, double>");
  static final String KEYLESS = "\u0000";
  private static final DateTimeFormatter ISO =
      DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'").withZone(ZoneOffset.UTC);
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Map<String, Term[]> terms;
  private final String[] fields;
  private final Set<Integer> timeFields;
  private final int kafkaTs;
  private final long idleMs;
  private final String[] columns;
  private transient ValueState<byte[]> head;
  private transient ListState<byte[]> chunks;

  public KeyProcessor(Map<String, Term[]> terms, String[] fields, Set<Integer> timeFields,
                      int kafkaTs, long idleMs) {
    this.terms = new HashMap<>(terms);
    this.columns = columns(terms);
    this.fields = fields;
    this.timeFields = new HashSet<>(timeFields);
    this.kafkaTs = kafkaTs;
    this.idleMs = idleMs;
  }

  /** Every term column (of all key fields), sorted: the fields of {@code vals} with a typed
   * record. */
  private static String[] columns(Map<String, Term[]> terms) {
    java.util.TreeSet<String> out = new java.util.TreeSet<>();
    for (Term[] ts : terms.values()) {
      for (Term t : ts) {
        out.add(t.column);
      }
    }
    return out.toArray(new String[0]);
  }

  /** The rows emitted for input rows of schema {@code in}: {@link #OUTPUT}; when the input has
   * a column rec, {@code vals} is a struct of every term column (NULL where the row's key
   * field has no such term: cheaper to emit than a map), then rec and kept. */
  StructType output(StructType in) {
    if (!java.util.Arrays.asList(in.fieldNames()).contains("rec")) {
      return OUTPUT;
    }
    StructType vals = new StructType();
    for (String c : columns) {
      vals = vals.add(c, DataTypes.DoubleType, true);
    }
    StructType out = new StructType();
    for (StructField f : OUTPUT.fields()) {
      out = f.name().equals("vals") ? out.add("vals", vals, true) : out.add(f);
    }
    return out.add("rec", in.apply("rec").dataType(), true)
        .add("kept", in.apply("vals").dataType(), true);
  }

  /** A re-evaluated event's kept fields as a row of {@code type} (the input's vals). */
  static Row kept(Entry e, StructType type) {
    StructField[] f = type.fields();
    Object[] out = new Object[f.length];
    for (int i = 0; i < f.length; i++) {
      out[i] = coerce(e.values[i], f[i].dataType());
    }
    return RowFactory.create(out);
  }

  private static Object coerce(Object v, DataType type) {
    if (v == null) {
      return null;
    }
    if (type.equals(DataTypes.LongType)) {
      return v instanceof Number ? ((Number) v).longValue() : null;
    }
    if (type.equals(DataTypes.DoubleType)) {
      return v instanceof Number ? ((Number) v).doubleValue() : null;
    }
    if (type.equals(DataTypes.BooleanType)) {
      return v instanceof Boolean ? v : null;
    }
    return v.toString();
  }

  /** The terms per key field. */
  Map<String, Term[]> terms() {
    return terms;
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    head = getHandle().getValueState("head", Encoders.BINARY(), TTLConfig.NONE());
    chunks = getHandle().getListState("chunks", Encoders.BINARY(), TTLConfig.NONE());
  }

  /** A kept value as the log holds it: Long, Double, String, Boolean or null. */
  static Object normalise(Object v) {
    if (v == null || v instanceof Long || v instanceof Double || v instanceof String
        || v instanceof Boolean) {
      return v;
    }
    if (v instanceof Float) {
      return Double.parseDouble(v.toString());
    }
    if (v instanceof Integer || v instanceof Short || v instanceof Byte) {
      return ((Number) v).longValue();
    }
    if (v instanceof Number) {
      return ((Number) v).doubleValue();
    }
    return v.toString();
  }

  static String iso(long micros) {
    Instant at = Instant.ofEpochSecond(Math.floorDiv(micros, 1_000_000L),
        Math.floorMod(micros, 1_000_000L) * 1000L);
    return ISO.format(at);
  }

  /** The kept fields as a JSON event (what the condition of a re-evaluation reads). */
  String doc(Entry e) {
    Map<String, Object> out = new LinkedHashMap<>();
    for (int i = 0; i < fields.length; i++) {
      Object v = e.values[i];
      if (i == kafkaTs || v == null) {
        continue;
      }
      out.put(fields[i], timeFields.contains(i) ? iso((Long) v) : v);
    }
    try {
      return JSON.writeValueAsString(out);
    } catch (JsonProcessingException exc) {
      throw new IllegalStateException(exc);
    }
  }

  @Override
  public Iterator<Row> handleInputRows(String key, Iterator<Row> rows, TimerValues timers) {
    List<Row> batch = new ArrayList<>();
    while (rows.hasNext()) {
      batch.add(rows.next());
    }
    if (batch.isEmpty()) {
      return CollectionConverters.asScala(Collections.<Row>emptyIterator());
    }
    Row first = batch.get(0);
    StructType schema = first.schema();
    int iKf = first.fieldIndex("kf");
    int iKv = first.fieldIndex("kv");
    int iP = first.fieldIndex("p");
    int iO = first.fieldIndex("o");
    int iEid = first.fieldIndex("eid");
    int iRaw = first.fieldIndex("raw");
    int iKts = first.fieldIndex("kts_us");
    int iT = first.fieldIndex("t");
    int iVals = first.fieldIndex("vals");
    int iLate = first.fieldIndex("late");
    int iHorizon = first.fieldIndex("horizon");
    boolean typed = java.util.Arrays.asList(schema.fieldNames()).contains("rec");
    int iRec = typed ? first.fieldIndex("rec") : -1;
    StructType valsType = (StructType) schema.apply("vals").dataType();
    int width = typed ? OUTPUT.length() + 2 : OUTPUT.length();
    String keyField = first.getString(iKf);
    Term[] keyTerms = terms.getOrDefault(keyField, new Term[0]);
    int[] at = new int[keyTerms.length];  // each term's field in a typed vals
    for (int i = 0; typed && i < keyTerms.length; i++) {
      at[i] = java.util.Arrays.binarySearch(columns, keyTerms[i].column);
    }
    String keyValue = first.getString(iKv);
    // In time order (then partition, offset), events without a time first: any fixed order
    // gives the same alerts for conditions that grow with the window, and this one
    // re-evaluates only the events that really came out of order across batches.
    batch.sort(Comparator.<Row>comparingInt(r -> r.isNullAt(iT) ? 0 : 1)
        .thenComparingLong(r -> r.isNullAt(iT) ? 0L : r.getLong(iT))
        .thenComparingInt(r -> r.getInt(iP))
        .thenComparingLong(r -> r.getLong(iO)));
    List<Row> out = new ArrayList<>();
    List<Entry> arrivals = new ArrayList<>();
    Map<Entry, Row> own = new HashMap<>();
    Long horizon = null;
    for (Row r : batch) {
      if (r.getBoolean(iLate)) {
        Object[] row = new Object[width];
        row[0] = "late";
        row[1] = false;
        row[2] = 0;
        row[3] = keyField;
        row[4] = r.getInt(iP);
        row[5] = r.getLong(iO);
        row[6] = r.getString(iEid);
        row[7] = r.getString(iRaw);
        row[8] = r.isNullAt(iKts) ? null : r.getLong(iKts);
        out.add(RowFactory.create(row));
        continue;
      }
      Row vals = r.getStruct(iVals);
      Object[] values = new Object[fields.length];
      for (int i = 0; i < fields.length; i++) {
        values[i] = normalise(vals.get(i));
      }
      Entry entry = new Entry(r.getInt(iP), r.getLong(iO), r.getString(iEid), values);
      arrivals.add(entry);
      own.put(entry, r);
      if (!r.isNullAt(iHorizon)) {
        long h = r.getLong(iHorizon);
        horizon = horizon == null ? h : Math.max(horizon, h);
      }
    }
    if (arrivals.isEmpty()) {
      return CollectionConverters.asScala(out.iterator());
    }
    byte[] data = head.get();  // null: a new entity (one read, not exists() then get())
    boolean keyless = keyValue == null || keyValue.startsWith(KEYLESS);
    StoredLog.Read stored = data == null ? null : StoredLog.read(data,
        CollectionConverters.asJava(chunks.get()), fields, keyTerms, keyless);
    KeyLog keyLog = stored == null ? new KeyLog(List.of(), keyless) : stored.log;
    int known = keyLog.entries.size();
    for (KeyLog.Evaluation ev : keyLog.arrive(keyTerms, arrivals, 0)) {
      Entry e = ev.entry;
      Row mine = ev.reevaluated ? null : own.get(e);
      Long kts = mine != null ? (mine.isNullAt(iKts) ? null : mine.getLong(iKts))
          : (Long) e.values[kafkaTs];
      Object[] row = new Object[width];
      row[0] = "eval";
      row[1] = ev.reevaluated;
      row[2] = ev.sequence;
      row[3] = keyField;
      row[4] = e.partition;
      row[5] = e.offset;
      row[6] = e.eventId();
      row[8] = kts;
      if (typed) {
        Object[] vals = new Object[columns.length];
        for (int i = 0; i < keyTerms.length; i++) {
          vals[at[i]] = ev.values[i];
        }
        row[10] = RowFactory.create(vals);
        row[11] = mine == null ? null : mine.get(iRec);
        row[12] = ev.reevaluated ? kept(e, valsType) : null;
      } else {
        Map<String, Double> vals = new HashMap<>();
        for (int i = 0; i < keyTerms.length; i++) {
          vals.put(keyTerms[i].column, ev.values[i]);
        }
        row[10] = CollectionConverters.asScala(vals);
        row[7] = mine == null ? null : mine.getString(iRaw);
        row[9] = ev.reevaluated ? doc(e) : null;
      }
      out.add(RowFactory.create(row));
    }
    List<Entry> added = new ArrayList<>(keyLog.entries.subList(known, keyLog.entries.size()));
    Long pruneTo = StoredLog.horizon(stored, horizon);
    keyLog.prune(keyTerms, pruneTo);
    long now = timers.getCurrentProcessingTimeInMs();
    long timer;
    if (stored == null) {
      timer = now + idleMs;
      getHandle().registerTimer(timer);
    } else {
      timer = stored.timer;
    }
    save(StoredLog.write(stored, keyLog, added, pruneTo, fields, now, timer));
    return CollectionConverters.asScala(out.iterator());
  }

  private void save(StoredLog.Write w) {
    if (w.rewrite != null) {
      if (w.rewrite.length == 0) {
        chunks.clear();
      } else {
        chunks.put(w.rewrite);
      }
    } else if (w.append != null) {
      chunks.appendValue(w.append);
    }
    head.update(w.head);
  }

  @Override
  public Iterator<Row> handleExpiredTimer(String key, TimerValues timers, ExpiredTimerInfo info) {
    byte[] data = head.get();
    if (data != null) {
      KeyLog.Head h = KeyLog.decodeHead(data, fields);
      long now = timers.getCurrentProcessingTimeInMs();
      if (now - h.seen >= idleMs) {
        head.clear();
        chunks.clear();
      } else {
        long timer = h.seen + idleMs;
        getHandle().registerTimer(timer);
        // the head alone: the chunks are on the fields the stored head names
        head.update(KeyLog.encodeHead(h.names, h.seen, timer, h.horizon));
      }
    }
    return CollectionConverters.asScala(Collections.<Row>emptyIterator());
  }
}
