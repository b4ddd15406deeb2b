package org.apache.http.message;

import org.apache.http.Header;

/** Stand-in for HttpCore's BasicHeader. */
public class BasicHeader implements Header {
    private final String name;
    private final String value;

    public BasicHeader(String name, String value) {
        this.name = name;
        this.value = value;
    }

    public String getName() {
        return name;
    }

    public String getValue() {
        return value;
    }
}
