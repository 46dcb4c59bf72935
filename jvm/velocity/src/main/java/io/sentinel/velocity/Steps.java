package io.sentinel.velocity;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/** The velocity query's two stateful steps, applied to DataFrames from PySpark (py4j). */
public final class Steps {
  private Steps() {}

  /** Too late or not per event, from the latest time of its Kafka partition (one group for
   * the topic). Needs columns p (int), o (long), t (long, nullable); adds late, horizon. */
  public static Dataset<Row> lateness(Dataset<Row> events, long latenessMicros) {
    StructType out = events.schema()
        .add("late", DataTypes.BooleanType, false)
        .add("horizon", DataTypes.LongType, true);
    return events
        .groupByKey((MapFunction<Row, Integer>) r -> 0, Encoders.INT())
        .transformWithState(new LatenessProcessor(latenessMicros), TimeMode.None(),
            OutputMode.Append(), Encoders.row(out));
  }

  /**
   * The per-entity logs, grouped by (kf, kv). {@code config} (JSON): {@code fields} (the kept
   * fields, in the order of the struct column {@code vals}), {@code time_fields}, {@code
   * kafka_ts} (the field with the record's Kafka time), {@code idle_ms} and {@code terms}: key
   * field → [{column, function, argument, distinct, order_by, window (microseconds)}].
   */
  public static Dataset<Row> entities(Dataset<Row> keyed, String config) {
    KeyProcessor processor = processor(config);
    int kf = keyed.schema().fieldIndex("kf");
    int kv = keyed.schema().fieldIndex("kv");
    return keyed
        .groupByKey((MapFunction<Row, String>) r -> r.getString(kf) + "\u0001" + r.getString(kv),
            Encoders.STRING())
        .transformWithState(processor, TimeMode.ProcessingTime(), OutputMode.Append(),
            Encoders.row(KeyProcessor.OUTPUT));
  }

  static KeyProcessor processor(String config) {
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(config);
    } catch (IOException exc) {
      throw new UncheckedIOException(exc);
    }
    List<String> fields = new ArrayList<>();
    root.get("fields").forEach(f -> fields.add(f.asText()));
    Set<Integer> times = new HashSet<>();
    root.get("time_fields").forEach(f -> times.add(fields.indexOf(f.asText())));
    Map<String, Term[]> terms = new HashMap<>();
    Iterator<Map.Entry<String, JsonNode>> keyFields = root.get("terms").properties().iterator();
    while (keyFields.hasNext()) {
      Map.Entry<String, JsonNode> kf = keyFields.next();
      List<Term> list = new ArrayList<>();
      for (JsonNode t : kf.getValue()) {
        JsonNode arg = t.get("argument");
        int argument = arg == null || arg.isNull() ? -1 : index(fields, arg.asText());
        list.add(new Term(t.get("column").asText(), t.get("function").asText(), argument,
            t.get("distinct").asBoolean(), index(fields, t.get("order_by").asText()),
            t.get("window").asLong()));
      }
      terms.put(kf.getKey(), list.toArray(new Term[0]));
    }
    return new KeyProcessor(terms, fields.toArray(new String[0]), times,
        fields.indexOf(root.get("kafka_ts").asText()), root.get("idle_ms").asLong());
  }

  private static int index(List<String> fields, String name) {
    int at = fields.indexOf(name);
    if (at < 0) {
      throw new IllegalArgumentException("field " + name + " is not kept: " + fields);
    }
    return at;
  }
}
