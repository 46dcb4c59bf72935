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
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/** The velocity query's two stateful steps, applied to DataFrames from PySpark (py4j). */
public final class Steps {
  private Steps() {}

  /** Too late or not per event, from the latest time of its Kafka partition (one group for
   * the topic). Needs columns p (int), o (long), t (long, nullable); adds late, horizon (see
   * {@link LatenessProcessor} for raw).
   *
   * <p>Grouped by a column expression ({@code groupBy(...).as}), not a key function: a key
   * function makes Spark turn every row into a Java object once more only to compute the key.
   * The key (an int, always 0) is the one the state was first written with. */
  public static Dataset<Row> lateness(Dataset<Row> events, long latenessMicros) {
    StructType out = events.schema()
        .add("late", DataTypes.BooleanType, false)
        .add("horizon", DataTypes.LongType, true);
    return events
        .groupBy(functions.lit(0).as("value"))
        .as(Encoders.INT(), Encoders.row(events.schema()))
        .transformWithState(new LatenessProcessor(latenessMicros), TimeMode.None(),
            OutputMode.Append(), Encoders.row(out));
  }

  /** The key of an entity's group: key field, U+0001, key value (as the state holds it). */
  static Column entityKey() {
    return functions.concat(functions.col("kf"), functions.lit("\u0001"), functions.col("kv"));
  }

  /**
   * The per-entity logs, grouped by (kf, kv). {@code config} (JSON): {@code fields} (the kept
   * fields, in the order of the struct column {@code vals}), {@code time_fields}, {@code
   * kafka_ts} (the field with the record's Kafka time), {@code idle_ms} and {@code terms}: key
   * field → [{column, function, argument, distinct, order_by, window (microseconds)}].
   *
   * <p>A struct column {@code rec} (the event's typed record) is passed on to the event's own
   * evaluations, and a re-evaluation carries its kept fields as {@code kept} (the type of
   * {@code vals}), so the conditions never parse the event's text again.
   */
  public static Dataset<Row> entities(Dataset<Row> keyed, String config) {
    KeyProcessor processor = processor(config);
    StructType in = keyed.schema();
    StructType out = processor.output(in);
    return keyed
        .groupBy(entityKey().as("value"))
        .as(Encoders.STRING(), Encoders.row(in))
        .transformWithState(processor, TimeMode.ProcessingTime(), OutputMode.Append(),
            Encoders.row(out));
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
