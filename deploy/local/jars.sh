# shellcheck shell=bash
# Step 2: JVM jars from Maven Central (deploy/jvm/pom.xml) into $SENTINEL_HOME/jars/{spark,kafka}.
# Skipped when the poms did not change since the last successful fetch (stamp: stamps/jars.sha256).

JARS_DIR="$SENTINEL_HOME/jars"
JVM_DIR="$ROOT/deploy/jvm"

jars_wanted_hash() { sha_of "$JVM_DIR/pom.xml" "$JVM_DIR/spark/pom.xml" "$JVM_DIR/kafka/pom.xml"; }

jars_up_to_date() {
  [[ -f "$STAMP_DIR/jars.sha256" ]] && [[ "$(cat "$STAMP_DIR/jars.sha256")" == "$(jars_wanted_hash)" ]] \
    && compgen -G "$JARS_DIR/spark/*.jar" >/dev/null && compgen -G "$JARS_DIR/kafka/*.jar" >/dev/null
}

# artifact_stem FILE.jar -> the name before the version ("jackson-core-2.21.2.jar" -> "jackson-core")
count_jars() { local f=("$1"/*.jar); [[ -e "${f[0]}" ]] && echo "${#f[@]}" || echo 0; }

artifact_stem() { basename "$1" .jar | sed -E 's/-[0-9].*$//'; }

# Drops from jars/spark every artifact pyspark already ships (whatever the version): two copies
# of a class on Spark's classpath is a bug waiting to happen, and pyspark's own wins anyway.
prune_spark_jars() {
  local pyjars
  pyjars="$("$PY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))' 2>/dev/null)" \
    || { warn "pyspark not importable from $PY; spark jars not checked against pyspark's"; return 0; }
  [[ -d "$pyjars" ]] || return 0
  declare -A bundled=()
  local j
  for j in "$pyjars"/*.jar; do bundled["$(artifact_stem "$j")"]=1; done
  local pruned=()
  for j in "$JARS_DIR"/spark/*.jar; do
    if [[ -n "${bundled[$(artifact_stem "$j")]:-}" ]]; then
      pruned+=("$(basename "$j")")
      rm -f "$j"
    fi
  done
  ((${#pruned[@]} == 0)) || info "already in pyspark, not copied: ${pruned[*]}"
}

ensure_jars() {
  if jars_up_to_date; then
    ok "jars up to date ($JARS_DIR: spark $(count_jars "$JARS_DIR/spark") jars, kafka $(count_jars "$JARS_DIR/kafka") jars)"
    return 0
  fi
  need_cmd java openjdk-17-jre-headless
  need_cmd mvn maven
  local log="$LOG_DIR/maven.log" tmp="$JARS_DIR.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  info "mvn dependency:copy-dependencies (log: $log)"
  if ! mvn -B -ntp -f "$JVM_DIR/pom.xml" dependency:copy-dependencies \
      -Dsentinel.jars="$tmp" >"$log" 2>&1; then
    grep -E 'ERROR' "$log" | head -n 15 >&2
    die "maven could not fetch the jars; see $log"
  fi
  rm -rf "$JARS_DIR/spark" "$JARS_DIR/kafka"
  mkdir -p "$JARS_DIR"
  mv "$tmp/spark" "$tmp/kafka" "$JARS_DIR/"
  rm -rf "$tmp"
  prune_spark_jars
  jars_wanted_hash >"$STAMP_DIR/jars.sha256"
  ok "spark: $(count_jars "$JARS_DIR/spark") jars, $(du -sh "$JARS_DIR/spark" | cut -f1)"
  ok "kafka: $(count_jars "$JARS_DIR/kafka") jars, $(du -sh "$JARS_DIR/kafka" | cut -f1)"
}

# Step 2a: the velocity query's compiled stateful processors (jvm/velocity, Java), compiled
# with javac against pyspark's jars into $SENTINEL_HOME/jars/sentinel/velocity-<hash>.jar
# (streaming/velocity_jar.py; skipped when the jar of these sources exists). Before the class
# archive: the archive is per jar set.
ensure_velocity_jar() {
  need_cmd javac openjdk-17-jdk-headless
  "$PY" -m streaming.velocity_jar || die "the velocity jar did not build (see above)"
}

# Step 2b: the Spark driver's class-data archive (streaming/class_archive.py), built once per
# JDK and jar set (~1 min) into $SENTINEL_HOME/cds; drivers map it and start faster. Failing to
# build it only warns: drivers then start without it.
ensure_class_archive() {
  "$PY" -m streaming.class_archive ||
    warn "no Spark class archive: Spark drivers start without it (python -m streaming.class_archive)"
}

# The same in the background while the services start (it needs only the venv and the jars, and
# the services mostly wait on disk and ports); finish_class_archive waits for it and shows its
# output. Nothing here starts a Spark driver before it is finished.
CLASS_ARCHIVE_PID=""
start_class_archive() {
  local log="$LOG_DIR/class-archive.log"
  mkdir -p "$LOG_DIR"
  ensure_class_archive >"$log" 2>&1 &
  CLASS_ARCHIVE_PID=$!
  info "building in the background (pid $CLASS_ARCHIVE_PID, log: $log)"
}
finish_class_archive() {
  [[ -n "$CLASS_ARCHIVE_PID" ]] || return 0
  wait "$CLASS_ARCHIVE_PID" || true  # ensure_class_archive only warns
  CLASS_ARCHIVE_PID=""
  sed 's/^/    /' "$LOG_DIR/class-archive.log"
}
