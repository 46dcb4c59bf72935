package io.sentinel.velocity;

import java.io.Serializable;

/** A window term as an entity's log computes it: window in microseconds, fields by index. */
public final class Term implements Serializable {
  private static final long serialVersionUID = 1L;

  public final String column;
  public final String function;
  /** Index of the argument in the kept fields, -1 for count(*). */
  public final int argument;
  public final boolean distinct;
  /** Index of the ordering (time) field in the kept fields. */
  public final int orderBy;
  public final long window;

  public Term(String column, String function, int argument, boolean distinct, int orderBy,
              long window) {
    this.column = column;
    this.function = function;
    this.argument = argument;
    this.distinct = distinct;
    this.orderBy = orderBy;
    this.window = window;
  }
}
