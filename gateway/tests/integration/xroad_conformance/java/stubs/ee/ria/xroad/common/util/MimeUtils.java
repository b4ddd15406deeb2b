package ee.ria.xroad.common.util;

/** The header names of X-Road's MimeUtils.java. */
public final class MimeUtils {
    public static final String HEADER_QUERY_ID = "x-road-id";
    public static final String HEADER_CLIENT_ID = "x-road-client";
    public static final String HEADER_SERVICE_ID = "x-road-service";
    public static final String HEADER_REQUEST_HASH = "x-road-request-hash";
    public static final String HEADER_REQUEST_ID = "x-road-request-id";
    public static final String HEADER_SECURITY_SERVER = "x-road-security-server";
    public static final String HEADER_REPRESENTED_PARTY = "x-road-represented-party";

    private MimeUtils() {
    }
}
