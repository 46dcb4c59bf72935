package io.sentinel.velocity;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Test driver: replays micro-batches through {@link Lateness} and {@link KeyLog} as the two
 * processors do (lateness in (partition, offset) order; per (key field, key value) the
 * arrivals in (time, partition, offset) order; each log stored as the processor stores it, a
 * head and chunks ({@link StoredLog}), and read back between batches), printing every
 * evaluation as a JSON line.
 *
 * <p>stdin: a first line {config (as Steps.entities takes it), lateness_us}, then one line per
 * batch: [{p, o, eid, t, vals: [...], keys: {field: value or null}}, ...].
 */
public final class Replay {
  private Replay() {}

  static Object value(JsonNode v) {
    if (v == null || v.isNull()) {
      return null;
    }
    if (v.isIntegralNumber()) {
      return v.longValue();
    }
    if (v.isNumber()) {
      return v.doubleValue();
    }
    if (v.isBoolean()) {
      return v.booleanValue();
    }
    return v.asText();
  }

  public static void main(String[] args) throws Exception {
    ObjectMapper json = new ObjectMapper();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in,
        StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    JsonNode head = json.readTree(in.readLine());
    KeyProcessor processor = Steps.processor(head.get("config").toString());
    long latenessUs = head.get("lateness_us").asLong();
    List<String> fields = new ArrayList<>();
    head.get("config").get("fields").forEach(f -> fields.add(f.asText()));
    String[] names = fields.toArray(new String[0]);
    Map<String, Term[]> terms = processor.terms();
    byte[] lateState = null;
    Map<String, byte[]> heads = new HashMap<>();
    Map<String, List<byte[]>> chunks = new HashMap<>();
    String line;
    int batchNo = 0;
    int appends = 0;
    int rewrites = 0;
    int longest = 0;
    while ((line = in.readLine()) != null) {
      List<JsonNode> batch = new ArrayList<>();
      json.readTree(line).forEach(batch::add);
      batch.sort(Comparator.<JsonNode>comparingInt(r -> r.get("p").asInt())
          .thenComparingLong(r -> r.get("o").asLong()));
      Lateness lateness = Lateness.decode(lateState, latenessUs);
      Map<String, List<Entry>> groups = new LinkedHashMap<>();
      Map<String, String> keyFieldOf = new HashMap<>();
      for (JsonNode r : batch) {
        JsonNode t = r.get("t");
        if (lateness.decide(r.get("p").asInt(), t.isNull() ? null : t.asLong())) {
          ObjectNode o = json.createObjectNode();
          o.put("batch", batchNo).put("kind", "late").put("p", r.get("p").asInt())
              .put("o", r.get("o").asLong());
          out.println(o);
          continue;
        }
        Object[] values = new Object[names.length];
        for (int i = 0; i < names.length; i++) {
          values[i] = KeyProcessor.normalise(value(r.get("vals").get(i)));
        }
        Entry entry = new Entry(r.get("p").asInt(), r.get("o").asLong(), r.get("eid").asText(),
            values);
        r.get("keys").properties().forEach(kv -> {
          String key = kv.getValue().isNull() ? KeyProcessor.KEYLESS + entry.eventId()
              : kv.getValue().asText();
          String group = kv.getKey() + "\u0001" + key;
          keyFieldOf.put(group, kv.getKey());
          groups.computeIfAbsent(group, g -> new ArrayList<>()).add(entry);
        });
      }
      lateState = lateness.encode();
      Long horizon = lateness.horizon();
      for (Map.Entry<String, List<Entry>> g : groups.entrySet()) {
        String kf = keyFieldOf.get(g.getKey());
        Term[] keyTerms = terms.getOrDefault(kf, new Term[0]);
        List<Entry> arrivals = g.getValue();
        int tIndex = fields.indexOf(head.get("time_field").asText());
        arrivals.sort(Comparator.<Entry>comparingInt(e -> e.values[tIndex] == null ? 0 : 1)
            .thenComparingLong(e -> e.values[tIndex] == null ? 0L : (Long) e.values[tIndex])
            .thenComparingInt(e -> e.partition).thenComparingLong(e -> e.offset));
        byte[] stateHead = heads.get(g.getKey());
        List<byte[]> list = chunks.computeIfAbsent(g.getKey(), k -> new ArrayList<>());
        boolean keyless = g.getKey().substring(kf.length() + 1)
            .startsWith(KeyProcessor.KEYLESS);
        StoredLog.Read stored = stateHead == null ? null
            : StoredLog.read(stateHead, list.iterator(), names, keyTerms, keyless);
        KeyLog log = stored == null ? new KeyLog(List.of(), keyless) : stored.log;
        int known = log.entries.size();
        for (KeyLog.Evaluation ev : log.arrive(keyTerms, arrivals, 0)) {
          ObjectNode o = json.createObjectNode();
          o.put("batch", batchNo).put("kind", "eval").put("kf", kf)
              .put("reeval", ev.reevaluated).put("seq", ev.sequence)
              .put("p", ev.entry.partition).put("o", ev.entry.offset)
              .put("eid", ev.entry.eventId());
          ObjectNode vals = o.putObject("vals");
          for (int i = 0; i < keyTerms.length; i++) {
            if (ev.values[i] == null) {
              vals.putNull(keyTerms[i].column);
            } else {
              vals.put(keyTerms[i].column, ev.values[i]);
            }
          }
          if (ev.reevaluated) {
            o.put("doc", processor.doc(ev.entry));
          }
          out.println(o);
        }
        List<Entry> added = new ArrayList<>(log.entries.subList(known, log.entries.size()));
        Long pruneTo = StoredLog.horizon(stored, horizon);
        log.prune(keyTerms, pruneTo);
        StoredLog.Write w = StoredLog.write(stored, log, added, pruneTo, names, 0L, 0L);
        if (w.rewrite != null) {
          list.clear();
          list.addAll(java.util.Arrays.asList(w.rewrite));
          rewrites++;
        } else if (w.append != null) {
          list.add(w.append);
          appends += stored == null ? 0 : 1;
        }
        longest = Math.max(longest, list.size());
        heads.put(g.getKey(), w.head);
      }
      batchNo++;
    }
    out.flush();
    // how the logs were stored: chunks appended to a stored log, lists rewritten, most chunks
    System.err.println(json.createObjectNode().put("appends", appends).put("rewrites", rewrites)
        .put("longest", longest));
  }
}
