package io.sentinel.velocity;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The first stateful step (one group for the whole topic): each event, in (partition, offset)
 * order, gets {@code late} (too late for its partition) and the batch's {@code horizon}. The
 * state is the latest time per partition. Output: the input columns, then late, horizon. With
 * a typed record (column rec) the text (column raw) is kept for the too-late events only.
 */
public final class LatenessProcessor extends StatefulProcessor<Integer, Row, Row> {
  private static final long serialVersionUID = 1L;

  private final long lateness;
  private transient ValueState<byte[]> maxima;

  public LatenessProcessor(long lateness) {
    this.lateness = lateness;
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    maxima = getHandle().getValueState("maxima", Encoders.BINARY(), TTLConfig.NONE());
  }

  @Override
  public Iterator<Row> handleInputRows(Integer key, Iterator<Row> rows, TimerValues timers) {
    List<Row> batch = new ArrayList<>();
    while (rows.hasNext()) {
      batch.add(rows.next());
    }
    if (batch.isEmpty()) {
      return CollectionConverters.asScala(java.util.Collections.<Row>emptyIterator());
    }
    Row first = batch.get(0);
    int p = first.fieldIndex("p");
    int o = first.fieldIndex("o");
    int t = first.fieldIndex("t");
    List<String> names = java.util.Arrays.asList(first.schema().fieldNames());
    int raw = names.contains("rec") ? names.indexOf("raw") : -1;
    batch.sort(Comparator.<Row>comparingInt(r -> r.getInt(p)).thenComparingLong(r -> r.getLong(o)));
    Lateness state = Lateness.decode(maxima.exists() ? maxima.get() : null, lateness);
    boolean[] late = new boolean[batch.size()];
    for (int i = 0; i < late.length; i++) {
      Row r = batch.get(i);
      late[i] = state.decide(r.getInt(p), r.isNullAt(t) ? null : r.getLong(t));
    }
    maxima.update(state.encode());
    Long horizon = state.horizon();
    int width = first.length();
    List<Row> out = new ArrayList<>(batch.size());
    for (int i = 0; i < late.length; i++) {
      Row r = batch.get(i);
      Object[] values = new Object[width + 2];
      for (int j = 0; j < width; j++) {
        values[j] = r.get(j);
      }
      if (raw >= 0 && !late[i]) {
        values[raw] = null;
      }
      values[width] = late[i];
      values[width + 1] = horizon;
      out.add(RowFactory.create(values));
    }
    return CollectionConverters.asScala(out.iterator());
  }
}
