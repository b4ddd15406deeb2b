package org.apache.http;

/** Stand-in for HttpCore's Header. */
public interface Header {
    String getName();

    String getValue();
}
