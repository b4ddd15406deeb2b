package ee.ria.xroad.common.util;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;

/** Stand-in for X-Road's UriUtils. */
public final class UriUtils {
    private UriUtils() {
    }

    public static String uriSegmentPercentDecode(String s) {
        return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
    }
}
